#!/usr/bin/env bash
# Start a Docker engine for the rig, beside any daemon that may already run.
#
# Source it (`source tests/rig/start-dockerd.sh`) to get DOCKER_HOST and
# HUBSHIP_DOCKER exported and the daemon stopped, by its PID, when the shell
# exits. It has its own data root (kept between runs, so the rig's base image
# is cached), exec root, socket and pidfile. It never creates Docker's default
# bridge or touches iptables: containers get host networking or none.
# If an engine already answers on the rig's socket, it is used as it is and
# left running. No `set -e` here: it would outlive this file in the shell
# that sources it; each step checks its own failure.

rig_state="${HUBSHIP_RIG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hubship-rig}"
docker_root="$rig_state/docker"
run_dir="/run/hubship-rig-docker"

export DOCKER_HOST="unix://$run_dir/docker.sock"
# Debian's 20.10 CLI builds with BuildKit without the buildx plugin; a newer
# client-only CLI earlier on PATH may lack buildx.
export HUBSHIP_DOCKER=/usr/bin/docker

if /usr/bin/docker version >/dev/null 2>&1; then
  echo "dockerd already answers at $DOCKER_HOST; using it (it is not stopped on exit)"
  return 0 2>/dev/null || exit 0
fi
mkdir -p "$docker_root" "$run_dir" || { return 1 2>/dev/null || exit 1; }

/usr/sbin/dockerd \
  --data-root "$docker_root" \
  --exec-root "$run_dir/exec" \
  --pidfile "$run_dir/dockerd.pid" \
  -H "$DOCKER_HOST" \
  --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
  --containerd-namespace hubship-rig --containerd-plugins-namespace hubship-rig-plugins \
  >"$run_dir/dockerd.log" 2>&1 &
hubship_dockerd_pid=$!
trap 'kill "$hubship_dockerd_pid" 2>/dev/null; wait "$hubship_dockerd_pid" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  if /usr/bin/docker version >/dev/null 2>&1; then
    echo "dockerd ready (pid $hubship_dockerd_pid) at $DOCKER_HOST"
    return 0 2>/dev/null || exit 0
  fi
  if ! kill -0 "$hubship_dockerd_pid" 2>/dev/null; then
    echo "dockerd exited; its log ($run_dir/dockerd.log) ends with:" >&2
    tail -n 20 "$run_dir/dockerd.log" >&2
    return 1 2>/dev/null || exit 1
  fi
  sleep 0.2
done
echo "dockerd did not answer within 20 s; see $run_dir/dockerd.log" >&2
return 1 2>/dev/null || exit 1
