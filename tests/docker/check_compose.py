#!/usr/bin/env python3
"""Checks docker/ without a Docker engine (CTest: compose_config).

`docker-compose config` (Debian's docker-compose 1.29) must accept docker-compose.yml with
each profile, and what it resolves must keep the deployment's rules: every predflow service
has a liveness check on /healthz, CPU and memory limits, a restart policy, SIGTERM with a
grace period, and binds published ports to the loopback only; the images run as a non-root
user with a stripped binary and no build tools.
"""
import pathlib
import subprocess
import sys

import yaml

root = pathlib.Path(__file__).resolve().parents[2]
compose = root / "docker" / "docker-compose.yml"
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def resolved(*profiles):
    args = ["docker-compose", "-p", "predflow", "-f", str(compose)]
    for p in profiles:
        args += ["--profile", p]
    out = subprocess.run(args + ["config"], capture_output=True, text=True)
    if out.returncode != 0:
        failures.append(f"docker-compose config {' '.join(profiles)} failed: {out.stderr.strip()}")
        return {}
    return yaml.safe_load(out.stdout)


predflow_services = {"predflow", "routing", "predict-normal", "predict-earnings", "persister", "predflow-gpu"}
config = resolved("split", "gpu")
services = config.get("services", {})
check(predflow_services <= set(services), f"services missing: {predflow_services - set(services)}")
for name, s in services.items():
    limits = s.get("deploy", {}).get("resources", {}).get("limits", {})
    check("cpus" in limits and "memory" in limits, f"{name}: no CPU/memory limits")
    check(s.get("restart") == "unless-stopped", f"{name}: restart policy is {s.get('restart')!r}")
    for port in s.get("ports", []):
        published = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
        check(str(published).startswith("127.0.0.1:"), f"{name}: port {port} is not bound to the loopback")
    if name not in predflow_services:
        continue
    test = " ".join(s.get("healthcheck", {}).get("test", []))
    check("/healthz" in test and "/readyz" not in test, f"{name}: the liveness check must ask /healthz: {test}")
    check(s.get("stop_signal") == "SIGTERM", f"{name}: stop_signal is not SIGTERM")
    check(s.get("stop_grace_period") in ("60s", "1m0s", 60), f"{name}: stop_grace_period {s.get('stop_grace_period')}")
    check(s.get("environment", {}).get("PREDFLOW_DATA_DIR") == "/var/lib/predflow", f"{name}: PREDFLOW_DATA_DIR")
    check(any(":/var/lib/predflow" in str(v) or (isinstance(v, dict) and v.get("target") == "/var/lib/predflow")
              for v in s.get("volumes", [])), f"{name}: no data volume at /var/lib/predflow")
    command = s.get("command", [])
    check(len(command) >= 2 and command[0] == "run" and (root / command[1]).is_file(),
          f"{name}: command {command} does not run a pipeline of the repository")

# Without a profile only the single process runs predflow.
default = resolved()
check({"predflow"} == predflow_services & set(default.get("services", {})) or
      # docker-compose 1.29 lists profiled services in `config`; 'profiles' marks them
      all(default["services"][n].get("profiles") for n in predflow_services - {"predflow"} if n in default.get("services", {})),
      "without a profile, only the single-process predflow service may start")

for dockerfile in ("Dockerfile", "Dockerfile.cuda"):
    text = (root / "docker" / dockerfile).read_text()
    runtime = text[text.rindex("\nFROM "):]
    check("\nUSER predflow" in runtime, f"{dockerfile}: the runtime stage must run as the user predflow")
    check("strip --strip-unneeded build/predflow" in text, f"{dockerfile}: the binary is not stripped")
    check("install-deps --build-only" in text, f"{dockerfile}: the build stage installs more than the build needs")
    for tool in ("build-essential", "cmake", "redis-server", "nats-server", "postgresql", "chromium"):
        check(tool not in runtime, f"{dockerfile}: the runtime stage installs {tool}")
    check("/healthz" in runtime, f"{dockerfile}: no HEALTHCHECK on /healthz")

ignore = (root / ".dockerignore").read_text().split()
for entry in ("build", ".git", ".devstack"):
    check(entry in ignore, f".dockerignore lacks {entry}")

if failures:
    print("\n".join("FAIL: " + f for f in failures))
    sys.exit(1)
print(f"docker/: ok ({len(services)} services checked)")
