#!/usr/bin/env bash
# On the lent GPU (after install_on_device.sh): run bench stages given as $1 (default d) and, once
# stage d's calls are flowing, sample the HTTP server and the benchmark's clients with py-spy
# (carried as a wheel in .gpu/tools) plus `top`, to see where the time of `generate` calls goes.
# Writes $OUT/run.log, $OUT/server.txt and $OUT/client.txt (collapsed stacks), $OUT/top.txt.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --target /tmp/pyspy .gpu/tools/py_spy-*.whl 2>/dev/null || true
spy=/tmp/pyspy/bin/py-spy
bash bench/gpu/bench_on_device.sh --stages "${1:-d}" > "$OUT/run.log" 2>&1 &
bench=$!
until grep -q "generate calls through" "$OUT/run.log"; do
  kill -0 $bench 2>/dev/null || { tail -20 "$OUT/run.log"; exit 1; }
  sleep 1
done
sleep 3
server=$(pgrep -f "server.py --transport http" | head -1)
top -b -d 2 -n 5 -w 200 > "$OUT/top.txt" &
$spy record --pid "$server" --duration 10 --rate 250 --format raw --nonblocking -o "$OUT/server.txt" >/dev/null 2>&1 &
$spy record --pid "$bench" --duration 10 --rate 250 --format raw --nonblocking -o "$OUT/client.txt" >/dev/null 2>&1 &
wait
grep -v "^\[bench" "$OUT/run.log" | tail -12
