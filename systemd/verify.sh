#!/usr/bin/env bash
# Checks a running florenced: service state (when under systemd), /health,
# one caption, /metrics. Exit status 0 when all pass.
#   systemd/verify.sh [--url http://127.0.0.1:11438] [--image FILE] [--api-key KEY] [--wait SECONDS]
# --wait: how long /health may take to become 200 (default 120 s: a model loading).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
url=http://127.0.0.1:11438
image="$here/../tests/fixtures/images/scene_640x480.png"
key="${FLORENCED_API_KEY:-}"
wait_s=120
while [ $# -gt 0 ]; do
  case "$1" in
    --url) url=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --api-key) key=$2; shift 2 ;;
    --wait) wait_s=$2; shift 2 ;;
    *) echo "verify.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
fail() { echo "FAIL: $*" >&2; exit 1; }
if [ -d /run/systemd/system ] && systemctl cat hailo-florence >/dev/null 2>&1; then
  systemctl is-active --quiet hailo-florence || fail "hailo-florence is not active (journalctl -u hailo-florence)"
  echo "ok: hailo-florence is active"
fi
for _ in $(seq 1 "$wait_s"); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$url/health" || true)
  [ "$code" = 200 ] && break
  sleep 1
done
[ "$code" = 200 ] || fail "$url/health answered $code: $(curl -s "$url/health" || true)"
echo "ok: $(curl -s "$url/health")"
[ -r "$image" ] || fail "no test image at $image"
mime=image/png
case "$image" in *.jpg|*.jpeg) mime=image/jpeg ;; esac
body=$(mktemp)
trap 'rm -f "$body"' EXIT
printf '{"image": "data:%s;base64,%s"}' "$mime" "$(base64 -w0 "$image")" >"$body"
auth=()
[ -n "$key" ] && auth=(-H "X-API-Key: $key")
answer=$(curl -s -w '\n%{http_code}' -H 'Content-Type: application/json' "${auth[@]}" --data-binary @"$body" "$url/v1/caption")
code=${answer##*$'\n'}
answer=${answer%$'\n'*}
[ "$code" = 200 ] || fail "/v1/caption answered $code: $answer"
case "$answer" in *'"caption":"'?*) ;; *) fail "no caption in $answer" ;; esac
echo "ok: $answer"
metrics=$(curl -s "${auth[@]}" "$url/metrics")
case "$metrics" in *requests_total*) echo "ok: $metrics" ;; *) fail "/metrics: $metrics" ;; esac
echo "florenced at $url works"
