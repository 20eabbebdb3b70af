#!/usr/bin/env bash
# Two `vkssm serve` replicas sharing sessions through Redis behind HAProxy:
#   1. 64 sessions fed in random interleavings by 1, 16 and 64 concurrent clients through the
#      balancer (scripts/cluster_load.py), then by 64 again with one replica killed with SIGKILL
#      half way (clients send unanswered requests again): every session's last logits equal a
#      single process's, and requests/s with p50/p99 latency are printed;
#   2. one replica killed with SIGKILL mid-run: a session goes on, on the other replica, with the
#      same text a single process gives;
#   3. the WebSocket audio endpoint through the same front port: HAProxy sends upgrades of
#      /v1/sessions/ID/audio to the replicas' --ws-port (these replicas serve a token model, so the
#      endpoint's own 400 for a token session shows the upgrade reached it).
#
#   scripts/cluster_check.sh [BUILD_DIR]      (default: build; needs BUILD_DIR/bin/vkssm)
#
# Needs redis-server and haproxy (Debian: apt-get install redis-server haproxy), curl and
# python3. Everything listens on 127.0.0.1 on free ports and is stopped at the end.
set -euo pipefail
[[ -n ${CLUSTER_DEBUG:-} ]] && set -x
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build=${1:-build}
vkssm=$build/bin/vkssm
model=models/mamba1/tiny-shakespeare
for tool in redis-server haproxy curl python3; do
  command -v "$tool" >/dev/null || { echo "cluster_check: $tool is not installed" >&2; exit 1; }
done
[[ -x $vkssm ]] || { echo "cluster_check: $vkssm is missing (build the vkssm_cli target)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Waits until `curl URL` answers, at most 10 s.
wait_http() {
  for _ in $(seq 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done
  echo "cluster_check: nothing answers at $1" >&2
  exit 1
}
# A field of the JSON on stdin, followed by "." so that $(...) keeps trailing newlines of text.
json() { python3 -c "import json, sys; sys.stdout.write(str(json.load(sys.stdin)$1) + '.')"; }
say() { echo "cluster_check: $*"; }

# ---- Redis, two replicas, HAProxy ----
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --logfile "$work/redis.log" &
pids+=($!)
for _ in $(seq 100); do
  [[ $(printf 'PING\r\n' | python3 -c "
import socket, sys
s = socket.create_connection(('127.0.0.1', $redis_port), 1); s.sendall(sys.stdin.buffer.read()); print(s.recv(16).decode().strip())
" 2>/dev/null) == +PONG ]] && break
  sleep 0.1
done

ports=()
ws_ports=()
replica_pids=()
start_replica() {  # start_replica INDEX PORT WS_PORT
  "$vkssm" serve --model "$model" --backend reference --port "$2" --ws-port "$3" --max-streams 32 \
    --redis "redis://127.0.0.1:$redis_port" 2>>"$work/replica-$1.log" &
  pids+=($!)
  replica_pids[$1]=$!
}
for replica in 0 1; do
  ports+=("$(free_port)")
  ws_ports+=("$(free_port)")
  start_replica "$replica" "${ports[$replica]}" "${ws_ports[$replica]}"
done
for port in "${ports[@]}"; do wait_http "http://127.0.0.1:$port/health"; done

front=$(free_port)
cat >"$work/haproxy.cfg" <<EOF
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch
frontend api
  bind 127.0.0.1:$front
  # vkssm serve answers WebSocket on a port of its own (cpp-httplib, which owns the HTTP port,
  # cannot hand a connection to a WebSocket library): the audio endpoint's requests go there, so
  # clients still see one front port.
  acl audio path_reg ^/v1/sessions/[^/]+/audio\$
  use_backend audio if audio
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /health
  timeout check 2s
  # A dead replica refuses connections at once (fall 2: gone within 0.4 s); a live one busy with
  # 64 clients on a small machine may answer a check late, and must not be taken out for that.
  default-server inter 200ms fall 2 rise 1
  server r0 127.0.0.1:${ports[0]} check
  server r1 127.0.0.1:${ports[1]} check
backend audio
  balance roundrobin
  # A WebSocket lives as long as its audio stream.
  timeout tunnel 1h
  option httpchk GET /health
  timeout check 2s
  default-server inter 200ms fall 2 rise 1
  # Health from the replica's HTTP port: the WebSocket port answers only its endpoint.
  server r0 127.0.0.1:${ws_ports[0]} check port ${ports[0]}
  server r1 127.0.0.1:${ws_ports[1]} check port ${ports[1]}
EOF
haproxy -f "$work/haproxy.cfg" -db 2>"$work/haproxy.log" &
pids+=($!)
wait_http "http://127.0.0.1:$front/health"
say "redis :$redis_port, replicas :${ports[0]} :${ports[1]}, haproxy :$front"

api=http://127.0.0.1:$front

# ---- many sessions through the balancer, against one process without Redis ----
ref_port=$(free_port)
"$vkssm" serve --model "$model" --backend reference --port "$ref_port" --max-streams 4 2>"$work/reference.log" &
pids+=($!)
wait_http "http://127.0.0.1:$ref_port/health"
python3 scripts/cluster_load.py --api "$api" --reference "http://127.0.0.1:$ref_port" --sessions 64 --requests 8 \
  --clients 1,16,64,64 --kill-pid "${replica_pids[0]}"
wait "${replica_pids[0]}" 2>/dev/null || true
start_replica 0 "${ports[0]}" "${ws_ports[0]}"  # back for the next part
wait_http "http://127.0.0.1:${ports[0]}/health"
sleep 0.6  # and back in HAProxy's rotation (a health check every 200 ms, one to rise)

# ---- one session through the balancer; the replica that generated first is killed ----
# (generate prints a newline after the text, which $(...) drops.)
want=$("$vkssm" generate --model "$model" --backend reference --prompt "ROMEO:" -n 60 --temperature 0 2>/dev/null)
generated() { curl -sf "http://127.0.0.1:${ports[$1]}/metrics" | awk '$1 == "vkssm_tokens_generated_total" {print $2}'; }

id=$(curl -sf "$api/v1/sessions" -d '' | json '["id"]')
id=${id%.}
curl -sf "$api/v1/sessions/$id/tokens" -d '{"ids": [82, 79, 77, 69, 79, 58]}' >/dev/null
got="ROMEO:"
for round in 1 2 3; do
  if [[ $round == 2 ]]; then
    victim=0
    [[ $(generated 1) -gt 0 ]] && victim=1
    kill -9 "${replica_pids[$victim]}"
    wait "${replica_pids[$victim]}" 2>/dev/null || true
    survivor=$((1 - victim))
    say "replica $victim (it generated the first 20 tokens) killed with SIGKILL"
  fi
  piece=$(curl -sf "$api/v1/sessions/$id/generate" -d '{"max_tokens": 20}' | json '["text"]')
  got+=${piece%.}
done

if [[ "$got" != "$want" ]]; then
  say "FAILED: the session's text differs from one process's"
  printf 'want: %q\ngot:  %q\n' "$want" "$got"
  exit 1
fi
say "ok: 60 tokens across the kill, the same text as one process (replica $survivor generated $(generated "$survivor") of them)"

# ---- the WebSocket audio endpoint through the same front port ----
# An upgrade request for a session of these token-model replicas: the WebSocket server's own
# refusal (400, naming the token model) shows HAProxy sent it to a --ws-port; the HTTP port would
# have answered 426.
id=$(curl -sf "$api/v1/sessions" -d '' | json '["id"]')
id=${id%.}
answer=$(curl -s -w '\n%{http_code}' -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
  -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' "$api/v1/sessions/$id/audio")
if [[ ${answer##*$'\n'} != 400 || $answer != *"is a session of a token model"* ]]; then
  say "FAILED: the audio endpoint's upgrade did not reach a replica's WebSocket port"
  printf '%s\n' "$answer"
  exit 1
fi
say "ok: /v1/sessions/ID/audio upgrades reach the replicas' WebSocket port through HAProxy"
