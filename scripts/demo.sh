#!/usr/bin/env bash
# One command from a fresh clone: install what is needed, build hoptrace, and
# watch it trace two unmodified Python services (frontend -> backend) that
# know nothing about tracing. Traces print as trees in this terminal.
#   ./scripts/demo.sh [requests]     (as root, or through sudo)
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-5}

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then exec sudo -E "$0" "$@"; fi
  echo "demo.sh: needs root (BPF): run it as root" >&2
  exit 1
fi

./scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target hoptrace -j"$(nproc)"

work=$(mktemp -d /tmp/hoptrace-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The services are plain Python standard-library servers; their file names
# become their service names.
ln -s "$PWD/tests/integration/services/http_service.py" "$work/backend.py"
ln -s "$PWD/tests/integration/services/http_service.py" "$work/frontend.py"
/usr/bin/python3 "$work/backend.py" --port 19090 --sleep-ms 30 > "$work/backend.out" &
pids+=($!)
/usr/bin/python3 "$work/frontend.py" --port 19080 --sleep-ms 10 \
  --downstream http://127.0.0.1:19090 > "$work/frontend.out" &
pids+=($!)
for f in backend frontend; do
  until grep -q listening "$work/$f.out" 2>/dev/null; do sleep 0.1; done
done

echo "== hoptrace check"
./build/agent/hoptrace check 2>/dev/null | grep -E "^MISSING|^hoptrace" | sed "s/  \[for: /  -- needed for: /; s/\]$//" || true
echo "== tracing frontend (pid ${pids[1]}) and backend (pid ${pids[0]})"
./build/agent/hoptrace run --pid "${pids[0]}" --pid "${pids[1]}" 2> "$work/agent.log" &
agent=$!
until grep -q "hoptrace ready" "$work/agent.log"; do
  kill -0 "$agent" 2>/dev/null || { cat "$work/agent.log"; exit 1; }
  sleep 0.1
done

for i in $(seq 1 "$requests"); do
  if [ "$i" = 1 ]; then
    # A caller that is itself traced: hoptrace joins its trace.
    curl -s -o /dev/null -H "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" \
      "http://127.0.0.1:19080/work?user=demo"
  else
    curl -s -o /dev/null "http://127.0.0.1:19080/work"
  fi
  sleep 0.3
done
curl -s -o /dev/null "http://127.0.0.1:19080/status/503"
sleep 1.5  # a trace prints once it has been quiet for a second
kill -INT "$agent"
wait "$agent" || true
echo "== agent log"
cat "$work/agent.log"
