// Real servers for integration tests: see servers.hpp. POSIX only, no client libraries.
#include "support/servers.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace predflow::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

namespace {

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// A socket connected to 127.0.0.1:port, or -1 (refused, or no answer within timeout).
int connect_loopback(int port, std::chrono::milliseconds timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    int err = 0;
    socklen_t len = sizeof err;
    if (rc == 1 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) rc = 0;
    else rc = -1;
  }
  if (rc != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& data, std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  std::size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left <= 0ms) return false;
    pollfd p{fd, POLLOUT, 0};
    ::poll(&p, 1, static_cast<int>(left.count()));
  }
  return true;
}

// Reads until `enough(bytes so far)` is true, the peer closes, or the timeout passes.
template <class Enough>
std::string read_until(int fd, std::chrono::milliseconds timeout, Enough enough) {
  const auto deadline = SteadyClock::now() + timeout;
  std::string got;
  char buf[4096];
  while (!enough(got)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left <= 0ms) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) got.append(buf, static_cast<std::size_t>(n));
    else if (n == 0 || (errno != EAGAIN && errno != EINTR)) break;
  }
  return got;
}

bool executable(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

// Highest /usr/lib/postgresql/N/bin that holds `name`.
std::string postgres_bin(const std::string& name) {
  if (const char* dir = std::getenv("PREDFLOW_PG_BINDIR"); dir && *dir) {
    if (executable(fs::path(dir) / name)) return (fs::path(dir) / name).string();
  }
  std::error_code ec;
  std::vector<std::pair<int, fs::path>> found;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string version = entry.path().filename().string();
    if (version.empty() || !std::all_of(version.begin(), version.end(), ::isdigit)) continue;
    fs::path candidate = entry.path() / "bin" / name;
    if (executable(candidate)) found.emplace_back(std::stoi(version), candidate);
  }
  if (found.empty()) return {};
  std::sort(found.begin(), found.end());
  return found.back().second.string();
}

bool is_postgres_program(const std::string& name) {
  static const char* const names[] = {"postgres", "initdb", "createdb", "psql", "pg_ctl", "pg_isready",
                                      "dropdb", "pg_dump", "pg_restore"};
  return std::find_if(std::begin(names), std::end(names), [&](const char* n) { return name == n; }) !=
         std::end(names);
}

std::string tail_of(const fs::path& path, std::size_t max_lines) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "(no log at " + path.string() + ")";
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  std::size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  std::size_t lines = 0;
  while (pos > 0) {
    if (text[pos - 1] == '\n' && ++lines == max_lines) break;
    --pos;
  }
  return text.substr(pos);
}

std::size_t file_size_or_zero(const fs::path& path) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  return ec ? 0 : static_cast<std::size_t>(size);
}

std::string file_from(const fs::path& path, std::size_t offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  in.seekg(static_cast<std::streamoff>(offset));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + ::strsignal(WTERMSIG(status));
  return "ended (status " + std::to_string(status) + ")";
}

// fork + exec with stdout/stderr appended to `log`, stdin from /dev/null, in a new process
// group, optionally as another user, with SIGKILL as parent-death signal. Everything the
// child needs is prepared here, since after fork() in a threaded process only
// async-signal-safe calls are allowed.
pid_t spawn(const std::vector<std::string>& argv, const fs::path& log, const fs::path& cwd,
            const std::optional<std::pair<uid_t, gid_t>>& run_as) {
  if (argv.empty()) throw ServerError("spawn: empty command");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const std::string log_s = log.string();
  const std::string cwd_s = cwd.string();
  const pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) throw ServerError(errno_text("fork"));
  if (pid == 0) {
    ::setpgid(0, 0);
    sigset_t all;
    sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    for (int sig : {SIGPIPE, SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) ::signal(sig, SIG_DFL);
    int out = ::open(log_s.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (out < 0 || in < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    if (run_as) {
      gid_t gid = run_as->second;
      if (::setgroups(1, &gid) != 0 || ::setgid(gid) != 0 || ::setuid(run_as->first) != 0) {
        static const char msg[] = "predflow test fixture: cannot switch user\n";
        [[maybe_unused]] auto n = ::write(2, msg, sizeof msg - 1);
        ::_exit(126);
      }
    }
    // After the user switch: changing credentials clears the parent-death signal.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(125);  // the test process is already gone
    if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0)  // before Linux 5.9
      for (int fd = 3; fd < 4096; ++fd) ::close(fd);
    if (::chdir(cwd_s.c_str()) != 0) ::_exit(126);
    ::execv(args[0], args.data());
    static const char msg[] = "predflow test fixture: exec failed: ";
    [[maybe_unused]] auto n1 = ::write(2, msg, sizeof msg - 1);
    [[maybe_unused]] auto n2 = ::write(2, args[0], std::strlen(args[0]));
    [[maybe_unused]] auto n3 = ::write(2, "\n", 1);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here, so that kill(-pid) works right away (may fail: harmless)
  return pid;
}

// The uid/gid of `user`, for servers that refuse to run as root.
std::pair<uid_t, gid_t> lookup_user(const std::string& user) {
  passwd pw{};
  passwd* result = nullptr;
  std::vector<char> buf(16384);
  if (::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &result) != 0 || result == nullptr)
    throw ServerError("running as root, and there is no '" + user + "' user to run the server as");
  return {pw.pw_uid, pw.pw_gid};
}

void chown_tree(const fs::path& dir, uid_t uid, gid_t gid) {
  if (::chown(dir.c_str(), uid, gid) != 0) throw ServerError(errno_text("chown " + dir.string()));
  std::error_code ec;
  for (const auto& entry : fs::recursive_directory_iterator(dir, ec))
    [[maybe_unused]] int rc = ::lchown(entry.path().c_str(), uid, gid);
}

}  // namespace

// ---------------------------------------------------------------------------------------

int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw ServerError(errno_text("socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::string err = errno_text("bind 127.0.0.1:0");
    ::close(fd);
    throw ServerError(err);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool port_accepts(int port, std::chrono::milliseconds timeout) {
  int fd = connect_loopback(port, timeout);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

std::string find_server_binary(const std::string& name) {
  if (is_postgres_program(name)) {
    if (auto p = postgres_bin(name); !p.empty()) return p;
  }
  std::vector<fs::path> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::stringstream ss(path);
    std::string item;
    while (std::getline(ss, item, ':'))
      if (!item.empty()) dirs.emplace_back(item);
  }
  for (const char* d : {"/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/usr/bin", "/sbin", "/bin"})
    dirs.emplace_back(d);
  for (const auto& d : dirs)
    if (executable(d / name)) return (d / name).string();
  return {};
}

// ---------------------------------------------------------------------------------------

ServerProcess::ServerProcess(ServerOptions options, const std::string& dir_prefix)
    : options_(std::move(options)), port_(options_.port), fixed_port_(options_.port != 0) {
  fs::path parent = options_.parent_dir.empty() ? fs::temp_directory_path() : options_.parent_dir;
  std::string pattern = (parent / ("predflow-" + dir_prefix + "-XXXXXX")).string();
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) throw ServerError(errno_text("mkdtemp " + pattern));
  dir_ = buf.data();
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {  // a derived destructor normally stopped it already
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  if (!options_.keep_dir) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

int ServerProcess::stop_signal() const { return SIGTERM; }

std::string ServerProcess::log_tail(std::size_t max_lines) const { return tail_of(log_path(), max_lines); }

void ServerProcess::fail(const std::string& what) {
  throw ServerError(name() + " (port " + std::to_string(port_) + ", dir " + dir_.string() + "): " + what +
                    "\n--- last lines of " + log_path().string() + " ---\n" + log_tail());
}

void ServerProcess::start() {
  if (running()) return;
  launch();
  wait_ready();
}

void ServerProcess::launch() {
  if (running()) return;
  if (!prepared_) {
    prepare();
    prepared_ = true;
  }
  if (port_ == 0) port_ = free_loopback_port();
  // Something else answering on the port would pass for this server's readiness probe.
  if (port_accepts(port_))
    fail("127.0.0.1:" + std::to_string(port_) + " is already in use by another process");
  pid_ = spawn(command(), log_path(), dir_, run_as_);
}

void ServerProcess::wait_ready() {
  if (!running()) fail("wait_ready() without launch()");
  std::size_t log_offset = 0;
  int attempts = 0;
  auto deadline = SteadyClock::now() + options_.start_timeout;
  int status = 0;
  // True (with `status`) once our child has exited; it is then reaped.
  auto exited = [&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; };
  for (;;) {
    bool gone = exited();
    // Answering, and still alive after the answer: the answer came from our server.
    if (!gone && probe() && !(gone = exited())) break;
    if (gone) {
      const pid_t old = pid_;
      pid_ = -1;
      ::kill(-old, SIGKILL);  // anything it left in its group
      std::string news = lower(file_from(log_path(), log_offset));
      bool port_taken = news.find("address already in use") != std::string::npos;
      if (port_taken && !fixed_port_ && !started_once_ && ++attempts < 5) {
        // Someone took the free port between our probe and the server's bind: another one.
        log_offset = file_size_or_zero(log_path());
        port_ = free_loopback_port();
        pid_ = spawn(command(), log_path(), dir_, run_as_);
        deadline = SteadyClock::now() + options_.start_timeout;
        continue;
      }
      fail("the server " + describe_status(status) + " before it answered on its port");
    }
    if (SteadyClock::now() > deadline) {
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
      fail("no answer on 127.0.0.1:" + std::to_string(port_) + " within " +
           std::to_string(options_.start_timeout.count()) + " ms");
    }
    std::this_thread::sleep_for(20ms);
  }
  if (!started_once_) {
    started_once_ = true;
    fixed_port_ = true;  // restarts keep this port
    after_first_start();
  }
}

void ServerProcess::reap(std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      ::kill(-pid_, SIGKILL);  // leftovers in its process group, if any
      pid_ = -1;
      return;
    }
    if (SteadyClock::now() > deadline) {
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(10ms);
  }
}

void ServerProcess::stop() {
  if (!running()) return;
  ::kill(pid_, stop_signal());
  reap(options_.stop_timeout);
}

void ServerProcess::kill() {
  if (!running()) return;
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  reap(5s);
}

void ServerProcess::restart() {
  stop();
  start();
}

void ServerProcess::run_helper(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  std::string line = "\n$";
  for (const auto& a : argv) line += " " + a;
  line += "\n";
  {
    std::ofstream log(log_path(), std::ios::app);
    log << line;
  }
  pid_t pid = spawn(argv, log_path(), dir_, run_as_);
  const auto deadline = SteadyClock::now() + timeout;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (SteadyClock::now() > deadline) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      fail(argv[0] + " did not finish within " + std::to_string(timeout.count()) + " ms");
    }
    std::this_thread::sleep_for(10ms);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail(argv[0] + " " + describe_status(status));
}

// ---------------------------------------------------------------------------------------
// Redis

RedisServer::RedisServer() : RedisServer(Options{}) {}

RedisServer::RedisServer(Options options)
    : ServerProcess(options, "redis"), appendonly_(options.appendonly), binary_(find_server_binary("redis-server")) {}

RedisServer::~RedisServer() {
  try {
    stop();
  } catch (...) {
  }
}

bool RedisServer::available() { return !find_server_binary("redis-server").empty(); }

std::string RedisServer::url() const { return "redis://127.0.0.1:" + std::to_string(port()) + "/0"; }

void RedisServer::prepare() {
  if (binary_.empty()) fail("redis-server not found on PATH (apt-get install redis-server)");
  fs::create_directories(dir_ / "data");
}

std::vector<std::string> RedisServer::command() const {
  std::vector<std::string> cmd = {binary_,
                                  "--port", std::to_string(port()),
                                  "--bind", "127.0.0.1",
                                  "--dir", (dir_ / "data").string(),
                                  "--daemonize", "no",
                                  "--logfile", "",
                                  "--save", "",                      // no background snapshots...
                                  "--shutdown-on-sigterm", "save",   // ...but stop() saves, so restart() keeps data
                                  "--appendonly", appendonly_ ? "yes" : "no"};
  if (appendonly_) cmd.insert(cmd.end(), {"--appendfsync", "always"});
  return cmd;
}

bool RedisServer::probe() const {
  int fd = connect_loopback(port(), 200ms);
  if (fd < 0) return false;
  bool ok = send_all(fd, "PING\r\n", 200ms);
  std::string reply =
      ok ? read_until(fd, 500ms, [](const std::string& s) { return s.find("\r\n") != std::string::npos; }) : "";
  ::close(fd);
  return reply.rfind("+PONG", 0) == 0;
}

// ---------------------------------------------------------------------------------------
// NATS

NatsServer::NatsServer() : NatsServer(ServerOptions{}) {}

NatsServer::NatsServer(ServerOptions options)
    : ServerProcess(std::move(options), "nats"), binary_(find_server_binary("nats-server")) {}

NatsServer::~NatsServer() {
  try {
    stop();
  } catch (...) {
  }
}

bool NatsServer::available() { return !find_server_binary("nats-server").empty(); }

std::string NatsServer::url() const { return "nats://127.0.0.1:" + std::to_string(port()); }

void NatsServer::prepare() {
  if (binary_.empty()) fail("nats-server not found on PATH or in /usr/sbin (apt-get install nats-server)");
  fs::create_directories(store_dir());
}

std::vector<std::string> NatsServer::command() const {
  return {binary_, "-js", "-sd", store_dir().string(), "-a", "127.0.0.1", "-p", std::to_string(port())};
}

bool NatsServer::probe() const {
  int fd = connect_loopback(port(), 200ms);
  if (fd < 0) return false;
  std::string info =
      read_until(fd, 500ms, [](const std::string& s) { return s.find("\r\n") != std::string::npos; });
  ::close(fd);
  return info.rfind("INFO ", 0) == 0 && info.find("\"jetstream\":true") != std::string::npos;
}

// ---------------------------------------------------------------------------------------
// PostgreSQL

PostgresServer::PostgresServer() : PostgresServer(ServerOptions{}) {}

PostgresServer::PostgresServer(ServerOptions options) : ServerProcess(std::move(options), "postgres") {
  if (auto postgres = find_server_binary("postgres"); !postgres.empty())
    bindir_ = fs::path(postgres).parent_path().string();
}

PostgresServer::~PostgresServer() {
  try {
    stop();
  } catch (...) {
  }
}

bool PostgresServer::available() { return !find_server_binary("postgres").empty() && !find_server_binary("initdb").empty(); }

std::string PostgresServer::url() const {
  return std::string("postgresql://") + user + "@127.0.0.1:" + std::to_string(port()) + "/" + database;
}

int PostgresServer::stop_signal() const { return SIGINT; }

void PostgresServer::prepare() {
  if (bindir_.empty())
    fail("PostgreSQL server programs not found in /usr/lib/postgresql/*/bin (apt-get install postgresql)");
  if (::geteuid() == 0) {
    run_as_ = lookup_user("postgres");
    chown_tree(dir_, run_as_->first, run_as_->second);
  }
  run_helper({(fs::path(bindir_) / "initdb").string(), "-D", data_dir().string(), "-U", user, "-A", "trust", "-E",
              "UTF8", "--no-locale", "--no-sync", "--no-instructions"},
             120s);
}

std::vector<std::string> PostgresServer::command() const {
  return {(fs::path(bindir_) / "postgres").string(),
          "-D", data_dir().string(),
          "-k", dir_.string(),
          "-p", std::to_string(port()),
          "-c", "listen_addresses=127.0.0.1",
          "-c", "fsync=off",
          "-c", "synchronous_commit=off",
          "-c", "full_page_writes=off"};
}

bool PostgresServer::probe() const {
  // A v3 startup packet; AuthenticationOk ('R', code 0) means it accepts sessions (while it
  // starts up or recovers it answers 'E' instead).
  int fd = connect_loopback(port(), 200ms);
  if (fd < 0) return false;
  std::string body;
  auto put32 = [](std::string& s, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xff));
  };
  put32(body, 196608);  // protocol 3.0
  for (const char* s : {"user", user, "database", "postgres"}) body.append(s).push_back('\0');
  body.push_back('\0');
  std::string packet;
  put32(packet, static_cast<std::uint32_t>(body.size() + 4));
  packet += body;
  bool ok = send_all(fd, packet, 200ms);
  std::string reply = ok ? read_until(fd, 1000ms, [](const std::string& s) { return s.size() >= 9; }) : "";
  bool ready = reply.size() >= 9 && reply[0] == 'R' && reply[5] == 0 && reply[6] == 0 && reply[7] == 0 &&
               reply[8] == 0;
  if (ready) send_all(fd, std::string("X\0\0\0\4", 5), 200ms);  // Terminate
  ::close(fd);
  return ready;
}

void PostgresServer::after_first_start() {
  run_helper({(fs::path(bindir_) / "createdb").string(), "-h", "127.0.0.1", "-p", std::to_string(port()), "-U", user,
              database},
             60s);
}

// ---------------------------------------------------------------------------------------

void ServerStack::start() {
  redis.launch();
  nats.launch();
  postgres.launch();  // initdb runs here, while the other two start
  redis.wait_ready();
  nats.wait_ready();
  postgres.wait_ready();
}

void ServerStack::stop() {
  postgres.stop();
  nats.stop();
  redis.stop();
}

// ---------------------------------------------------------------------------------------
// Prometheus

PrometheusServer::PrometheusServer(Options options)
    : ServerProcess(options, "prometheus"),
      scrape_ports_(std::move(options.scrape_ports)),
      rule_files_(std::move(options.rule_files)),
      interval_(options.interval),
      binary_(find_server_binary("prometheus")) {}

PrometheusServer::~PrometheusServer() {
  try {
    stop();
  } catch (...) {
  }
}

bool PrometheusServer::available() { return !find_server_binary("prometheus").empty(); }

std::string PrometheusServer::url() const { return "http://127.0.0.1:" + std::to_string(port()); }

void PrometheusServer::prepare() {
  if (binary_.empty()) fail("prometheus not found on PATH or in /usr/bin (apt-get install prometheus)");
  const std::string every = std::to_string(interval_.count()) + "ms";
  std::ofstream config(dir_ / "prometheus.yml");
  config << "global:\n  scrape_interval: " << every << "\n  evaluation_interval: " << every << "\n"
         << "rule_files:\n";
  for (const auto& f : rule_files_) config << "  - " << f.string() << "\n";
  config << "scrape_configs:\n  - job_name: predflow\n    static_configs:\n      - targets: [";
  for (std::size_t i = 0; i < scrape_ports_.size(); ++i)
    config << (i ? ", " : "") << "\"127.0.0.1:" << scrape_ports_[i] << "\"";
  config << "]\n";
  if (!config) fail("cannot write prometheus.yml");
  fs::create_directories(dir_ / "data");
}

std::vector<std::string> PrometheusServer::command() const {
  return {binary_, "--config.file=" + (dir_ / "prometheus.yml").string(), "--storage.tsdb.path=" + (dir_ / "data").string(),
          "--web.listen-address=127.0.0.1:" + std::to_string(port())};
}

bool PrometheusServer::probe() const {
  int fd = connect_loopback(port(), 200ms);
  if (fd < 0) return false;
  const std::string request = "GET /-/ready HTTP/1.0\r\n\r\n";
  bool sent = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size());
  std::string answer = sent ? read_until(fd, 500ms, [](const std::string& s) { return s.find("\r\n") != std::string::npos; }) : "";
  ::close(fd);
  return answer.rfind("HTTP/1.", 0) == 0 && answer.find(" 200 ") != std::string::npos;
}

std::map<std::string, std::string> ServerStack::environment() const {
  return {{"REDIS_URL", redis.url()}, {"NATS_URL", nats.url()}, {"DATABASE_URL", postgres.url()}};
}

}  // namespace predflow::test
