#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`; install and start one if not.
#
# Idempotent: an engine that already answers is left alone (a developer's Docker Desktop, a CI
# runner's service). On a bare Debian machine (no engine runs, maybe no registry is
# reachable, but Debian's `docker.io` package installs one) it installs docker.io, starts `dockerd`
# in the background with its log in $LAB_DOCKERD_LOG, and waits until it answers.
#
# Environment:
#   LAB_DOCKERD_LOG       dockerd's log file (default /var/log/ecs-lab-dockerd.log)
#   LAB_DOCKERD_TIMEOUT   seconds to wait for `docker info` (default 60)
#   LAB_DOCKERD_STORAGE   storage driver to try first (default overlay2; vfs is the fallback)
set -euo pipefail

log_file="${LAB_DOCKERD_LOG:-/var/log/ecs-lab-dockerd.log}"
timeout="${LAB_DOCKERD_TIMEOUT:-60}"
storage="${LAB_DOCKERD_STORAGE:-overlay2}"

say() { echo "docker-engine: $*" >&2; }

engine_answers() { docker info >/dev/null 2>&1; }

already=false
if command -v docker >/dev/null 2>&1 && engine_answers; then
  say "engine already answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
  already=true
fi

if [ "$already" = false ] && [ "$(id -u)" != 0 ]; then
  say "no Docker engine answers and this script is not root, so it cannot install or start one."
  say "Start Docker yourself (e.g. 'sudo systemctl start docker') or re-run as root."
  exit 1
fi

if [ "$already" = false ] && { ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; }; then
  say "installing Debian's docker.io (dockerd, containerd, runc, iptables)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi

# A systemd-managed machine starts it the ordinary way; containers and sandboxes have no systemd.
if [ "$already" = false ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl start docker 2>/dev/null || true
fi

wait_for_engine() {
  local pid=$1 deadline=$((SECONDS + timeout))
  while ! engine_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      return 2
    fi
    sleep 0.5
  done
}

start_dockerd() {
  local driver=$1
  mkdir -p "$(dirname "$log_file")"
  say "starting dockerd (storage driver $driver), log: $log_file"
  # setsid: dockerd outlives this script and a Ctrl-C in the caller's terminal.
  # iptables stays on (the default) because the lab relies on it: `internal` networks are isolated
  # by iptables rules, and image builds reach Debian/PyPI through NAT.
  setsid dockerd --storage-driver="$driver" --host=unix:///var/run/docker.sock \
    >>"$log_file" 2>&1 </dev/null &
  echo $!
}

if ! engine_answers; then
  # A socket file left by a dead dockerd makes the new one refuse to start.
  if [ -S /var/run/docker.sock ] && ! pgrep -x dockerd >/dev/null 2>&1; then
    rm -f /var/run/docker.sock /var/run/docker.pid
  fi
  if pgrep -x dockerd >/dev/null 2>&1; then
    pid=$(pgrep -x dockerd | head -1)
    say "dockerd (pid $pid) is running but not answering yet; waiting"
  else
    pid=$(start_dockerd "$storage")
  fi
  rc=0
  wait_for_engine "$pid" || rc=$?
  if [ $rc = 1 ] && [ "$storage" != vfs ]; then
    say "dockerd exited with storage driver $storage; retrying with vfs (slower, works everywhere)"
    tail -n 5 "$log_file" >&2 || true
    rm -f /var/run/docker.pid
    pid=$(start_dockerd vfs)
    rc=0
    wait_for_engine "$pid" || rc=$?
  fi
  if [ $rc != 0 ]; then
    if [ $rc = 1 ]; then
      say "dockerd exited before answering. Last lines of $log_file:"
    else
      say "dockerd did not answer 'docker info' within ${timeout}s. Last lines of $log_file:"
    fi
    tail -n 20 "$log_file" >&2 || true
    exit 1
  fi
fi

# `docker compose` (plugin) or docker-compose 1.x: the root docker-compose.yml is tested with it.
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    say "installing Debian's docker-compose"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; }
  fi
fi

say "engine ready: $(docker version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null)," \
    "storage $(docker info --format '{{.Driver}}' 2>/dev/null)"
