#!/usr/bin/env bash
# Records every system call florenced makes with ONNX Runtime and GStreamer
# loaded, through what the service does: start-up (model load, graph cache,
# warm-up, READY=1 and watchdog pings to a notify socket), /health, /metrics, a
# greedy and a beam caption, a VQA request, a SIGHUP reload that loads the model
# into new pipelines, and a SIGTERM stop. Prints the calls seen (with counts) and
# the ones the unit's SystemCallFilter does not allow.
#   bash scripts/trace-syscalls.sh [--model-dir DIR] [--binary PATH] [--helper PATH] [--keep DIR]
# Needs strace (scripts/setup.sh installs it) and a built florenced and
# seccomp-exec (cargo build -p florenced -p florence-seccomp-exec). Exits 1 when
# a call outside the filter is not one of the known optional ones below.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binary="$ROOT/target/debug/florenced"
helper="$ROOT/target/debug/seccomp-exec"
model_dir="$ROOT/tests/fixtures/tiny-florence2"
keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --model-dir) model_dir=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --helper) helper=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "trace-syscalls.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v strace >/dev/null || { echo "trace-syscalls.sh: strace is not installed" >&2; exit 1; }
[ -x "$helper" ] || { echo "trace-syscalls.sh: no seccomp-exec at $helper" >&2; exit 1; }
work=${keep:-$(mktemp -d)}
mkdir -p "$work/cache"
notify_pid=""
strace_pid=""
daemon_pid=""
cleanup() {
  # The daemon too: a killed strace detaches and leaves its tracee running.
  for pid in $daemon_pid $strace_pid $notify_pid; do kill "$pid" 2>/dev/null || true; done
  [ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT
image="$ROOT/tests/fixtures/images/scene_640x480.png"

cat >"$work/config.yaml" <<EOF
host: 127.0.0.1
port: 0
model_dir: $model_dir
threads: 1
log_format: json
EOF
# systemd's notify socket: a datagram socket florenced writes READY=1 and pings to.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    s.recv(4096)
' "$work/notify.sock" &
notify_pid=$!
# Each wait below ends on its event; the deadline only guards against a hang.
limit=$((SECONDS + 300))
guard() {
  [ "$SECONDS" -lt "$limit" ] || { echo "trace-syscalls.sh: no $1 within 300 s" >&2; cat "$work/florenced.log" >&2 2>/dev/null; exit 1; }
}
until [ -S "$work/notify.sock" ]; do
  kill -0 "$notify_pid" 2>/dev/null || { echo "trace-syscalls.sh: the notify socket listener died" >&2; exit 1; }
  guard "notify socket"
  sleep 0.05
done

NOTIFY_SOCKET="$work/notify.sock" WATCHDOG_USEC=2000000 CACHE_DIRECTORY="$work/cache" \
  strace -f -qq -o "$work/strace.log" "$binary" --config "$work/config.yaml" >>"$work/florenced.log" 2>&1 &
strace_pid=$!
# Signals go to florenced itself: the child of strace that runs the binary (a
# child read before its exec, or another one strace starts, is not it).
exe=$(readlink -f "$binary")
florenced_child() {
  local c
  for c in $(cat /proc/"$strace_pid"/task/*/children 2>/dev/null); do
    [ "$(readlink "/proc/$c/exe" 2>/dev/null)" = "$exe" ] && { echo "$c"; return; }
  done
  return 0
}
until daemon_pid=$(florenced_child) && [ -n "$daemon_pid" ]; do
  kill -0 "$strace_pid" 2>/dev/null || { echo "trace-syscalls.sh: strace ended" >&2; exit 1; }
  guard "florenced process"
  sleep 0.05
done
wait_log() {
  local pattern=$1
  until grep -q "$pattern" "$work/florenced.log"; do
    kill -0 "$strace_pid" 2>/dev/null || { cat "$work/florenced.log" >&2; exit 1; }
    guard "$pattern"
    sleep 0.1
  done
}
wait_log '"model loaded; serving"'
addr=$(grep -o '"address":"[^"]*"' "$work/florenced.log" | head -1 | cut -d'"' -f4)
url="http://$addr"
curl() { command curl --max-time 120 "$@"; }
curl -fsS "$url/health" >/dev/null
curl -fsS "$url/metrics" >/dev/null
b64=$(base64 -w0 "$image")
caption() { curl -fsS "$url/v1/caption" -H 'Content-Type: application/json' -d "$1" >/dev/null; }
caption "{\"image\": \"$b64\", \"num_beams\": 1}"
caption "{\"image\": \"$b64\", \"num_beams\": 3}"
curl -fsS "$url/v1/caption" -F "image=@$image" >/dev/null
curl -fsS "$url/v1/vqa" -H 'Content-Type: application/json' \
  -d "{\"image\": \"$b64\", \"question\": \"what colour is the bar?\"}" >/dev/null
# A pipeline setting changes: SIGHUP loads the model into new pipelines.
sed -i 's/^threads: 1/threads: 2/' "$work/config.yaml"
kill -HUP "$daemon_pid"
wait_log '"configuration reloaded"'
caption "{\"image\": \"$b64\", \"num_beams\": 3}"
kill -TERM "$daemon_pid"
wait "$strace_pid"
strace_pid=""
daemon_pid=""

# "pid  name(args) = result": count the names (also of calls that failed).
# ("<... name resumed>" continues a call already counted; "+++"/"---" are exits and signals.)
sed -nE 's/^[0-9]+ +([a-z0-9_]+)\(.*/\1/p' "$work/strace.log" | sort | uniq -c | sort -rn >"$work/seen.txt"
echo "system calls seen (count name):"
cat "$work/seen.txt"
# Outside the filter, but optional: each fails with EPERM under it and the
# caller goes on (florenced/tests/hardening.rs serves under the filter).
#   sched_setaffinity: ONNX Runtime pins a probe thread to each core in turn
#   sched_setattr: GLib's thread pool tests it, then spawns from a helper thread
#   fchown: SQLite in ONNX Runtime (a device-id file in ~/.cache), as root only
optional="fchown sched_setaffinity sched_setattr"
"$helper" --unit "$ROOT/systemd/hailo-florence.service" --print-allowed | sort >"$work/allowed.txt"
awk '{print $2}' "$work/seen.txt" | sort -u | comm -23 - "$work/allowed.txt" >"$work/outside.txt"
unexpected=""
for call in $(cat "$work/outside.txt"); do
  case " $optional " in
    *" $call "*) echo "outside the filter, optional (EPERM): $call" ;;
    *) unexpected="$unexpected $call" ;;
  esac
done
if [ -n "$unexpected" ]; then
  echo "NOT allowed by the unit's SystemCallFilter:$unexpected"
  exit 1
fi
echo "every other call seen is allowed by the unit's SystemCallFilter"
