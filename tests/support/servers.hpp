// Real servers for integration tests: redis-server, nats-server (JetStream) and PostgreSQL,
// each started as a child process on a free loopback port in a fresh temporary directory,
// and stopped by PID. No mocks, and no client libraries here: this file only starts and
// stops processes and waits until they answer on their port (a few bytes of each server's
// own protocol), so it links into any test binary. Clients (hiredis, nats.c, libpq) belong
// to the tests that use them.
//
//   predflow::test::RedisServer redis;      // nothing runs yet
//   redis.start();                          // throws ServerError with the log tail on failure
//   connect_somehow(redis.url());           // redis://127.0.0.1:PORT/0
//   redis.kill();  redis.restart();         // crash, then back on the same port and data
//
// Every server is put in a process group of its own and gets PR_SET_PDEATHSIG(SIGKILL), so
// it dies with the test process (even on a crash or SIGKILL of the test). The death signal
// follows the *thread* that called start(): start servers from a thread that outlives them
// (the main thread, as doctest does). The destructor stops the server and removes the
// temporary directory. Not thread-safe: one thread drives one server object.
//
// When the test runs as root, PostgreSQL (whose initdb/postgres refuse to run as root) runs
// as the `postgres` user, which then owns the temporary directory.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace predflow::test {

// A server that could not be started or stopped; what() ends with the tail of its log.
class ServerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A free TCP port on 127.0.0.1 (bind port 0 and read it back). Another process may take it
// before it is used: start() retries with a new port when the server cannot bind it.
int free_loopback_port();

// True when something accepts a TCP connection on 127.0.0.1:port right now.
bool port_accepts(int port, std::chrono::milliseconds timeout = std::chrono::milliseconds(200));

// Where an executable lives: PATH, then /usr/sbin, /usr/local/bin, /usr/local/sbin; for
// PostgreSQL programs the highest /usr/lib/postgresql/N/bin first (or $PREDFLOW_PG_BINDIR).
// Empty when not found.
std::string find_server_binary(const std::string& name);

struct ServerOptions {
  int port = 0;  // 0 = a free loopback port, chosen at the first start and kept afterwards
  std::chrono::milliseconds start_timeout{30000};  // until the server answers on its port
  std::chrono::milliseconds stop_timeout{10000};   // after the stop signal, before SIGKILL
  std::filesystem::path parent_dir;                // empty = the system temp directory
  bool keep_dir = false;                           // keep the temp dir at destruction (debugging)
};

// Common part: one child process, its port, its temp dir and its log file.
class ServerProcess {
 public:
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  virtual ~ServerProcess();

  // Start (fork/exec) and wait until the server answers; throws ServerError (with the
  // server's log tail) on a timeout or an early exit. Does nothing when already running.
  void start();
  // The two halves of start(), to start several servers side by side.
  void launch();
  void wait_ready();
  // Stop signal (SIGTERM; PostgreSQL: SIGINT, its "fast" shutdown), wait, SIGKILL after
  // stop_timeout; also kills anything left in the server's process group. No-op when stopped.
  void stop();
  // SIGKILL to the whole process group, at once (a crash). No-op when stopped.
  void kill();
  // stop() (when running), then start() on the same port with the same data directory.
  void restart();

  bool running() const { return pid_ > 0; }
  int port() const { return port_; }  // 0 before the first start
  pid_t pid() const { return pid_; }  // -1 when not running
  virtual std::string url() const = 0;
  virtual std::string name() const = 0;  // "redis", "nats", "postgres"

  const std::filesystem::path& dir() const { return dir_; }  // the temp dir (log, data)
  std::filesystem::path log_path() const { return dir_ / "server.log"; }
  std::string log_tail(std::size_t max_lines = 40) const;

 protected:
  explicit ServerProcess(ServerOptions options, const std::string& dir_prefix);

  // The server's command line (argv[0] is the executable's full path).
  virtual std::vector<std::string> command() const = 0;
  // Once, before the first launch (e.g. initdb).
  virtual void prepare() {}
  // True once the server answers on port() (it accepts TCP, and its protocol says ready).
  virtual bool probe() const { return port_accepts(port_); }
  // Once, after the first successful start (e.g. createdb).
  virtual void after_first_start() {}
  virtual int stop_signal() const;
  // Run the server and the helpers as this user (uid, gid), when set.
  std::optional<std::pair<uid_t, gid_t>> run_as_;

  // Run a helper program to completion (its output appended to the log); throws ServerError
  // with the log tail when it fails or runs longer than timeout.
  void run_helper(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

  // Throws ServerError: "<name> (port, dir): what", then the tail of the log.
  [[noreturn]] void fail(const std::string& what);

  ServerOptions options_;
  std::filesystem::path dir_;

 private:
  void reap(std::chrono::milliseconds timeout);

  int port_ = 0;
  bool fixed_port_ = false;
  pid_t pid_ = -1;
  bool prepared_ = false;
  bool started_once_ = false;
};

class RedisServer : public ServerProcess {
 public:
  struct Options : ServerOptions {
    bool appendonly = false;  // AOF with appendfsync always: every write survives kill()
  };
  RedisServer();
  explicit RedisServer(Options options);
  ~RedisServer() override;
  std::string url() const override;  // redis://127.0.0.1:P/0
  std::string name() const override { return "redis"; }
  static bool available();

 protected:
  std::vector<std::string> command() const override;
  void prepare() override;
  bool probe() const override;  // PING answers +PONG (not -LOADING)

 private:
  bool appendonly_;
  std::string binary_;
};

class NatsServer : public ServerProcess {
 public:
  NatsServer();
  explicit NatsServer(ServerOptions options);
  ~NatsServer() override;
  std::string url() const override;  // nats://127.0.0.1:P
  std::string name() const override { return "nats"; }
  std::filesystem::path store_dir() const { return dir_ / "jetstream"; }
  static bool available();

 protected:
  std::vector<std::string> command() const override;
  void prepare() override;
  bool probe() const override;  // the INFO line says "jetstream":true

 private:
  std::string binary_;
};

class PostgresServer : public ServerProcess {
 public:
  PostgresServer();
  explicit PostgresServer(ServerOptions options);
  ~PostgresServer() override;
  std::string url() const override;  // postgresql://postgres@127.0.0.1:P/predflow
  std::string name() const override { return "postgres"; }
  std::filesystem::path data_dir() const { return dir_ / "data"; }
  static constexpr const char* database = "predflow";
  static constexpr const char* user = "postgres";
  static bool available();

 protected:
  std::vector<std::string> command() const override;
  void prepare() override;               // initdb (trust auth, user postgres, no fsync)
  bool probe() const override;           // a startup packet is answered with AuthenticationOk
  void after_first_start() override;     // createdb predflow
  int stop_signal() const override;      // SIGINT: fast shutdown

 private:
  std::string bindir_;
};

// Prometheus (Debian's `prometheus`), scraping predflow processes on loopback and
// evaluating alert rules: the dashboard and alert checks query it through its HTTP API.
class PrometheusServer : public ServerProcess {
 public:
  struct Options : ServerOptions {
    std::vector<int> scrape_ports;                    // 127.0.0.1:P/metrics, job "predflow"
    std::vector<std::filesystem::path> rule_files;    // absolute paths
    std::chrono::milliseconds interval{1000};         // scrape and rule evaluation interval
  };
  explicit PrometheusServer(Options options);
  ~PrometheusServer() override;
  std::string url() const override;  // http://127.0.0.1:P
  std::string name() const override { return "prometheus"; }
  static bool available();

 protected:
  std::vector<std::string> command() const override;
  void prepare() override;       // writes prometheus.yml into the temp dir
  bool probe() const override;   // GET /-/ready answers 200

 private:
  std::vector<int> scrape_ports_;
  std::vector<std::filesystem::path> rule_files_;
  std::chrono::milliseconds interval_;
  std::string binary_;
};

// The three servers together, started side by side (about as long as the slowest one).
struct ServerStack {
  RedisServer redis;
  NatsServer nats;
  PostgresServer postgres;

  void start();  // launches all three, then waits for each
  void stop();
  // REDIS_URL, NATS_URL, DATABASE_URL, as the contract names them.
  std::map<std::string, std::string> environment() const;
};

}  // namespace predflow::test
