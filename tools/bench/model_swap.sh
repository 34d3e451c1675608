#!/usr/bin/env bash
# Hot swap under load: m5.yaml on the devstack against tools/loadgen (as m5_e2e.sh), with the
# normal-day model swapped every SWAP_EVERY seconds throughout the measured cycles — a new
# version folder added to a copy of the model repository, then SIGHUP — and the same run
# without swaps as the baseline. docs/performance.md (## Model hot swap) reports it.
#
#   tools/bench/model_swap.sh [N] [CYCLES]        (default 5000 symbols, 8 cycles)
#
# Environment: BUILD (default build), SWAP_EVERY (default 0.7 s), WARMUP (default 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
symbols=${1:-5000}
cycles=${2:-8}
build=${BUILD:-build}
every=${SWAP_EVERY:-0.7}
work=$(mktemp -d /tmp/predflow-swap-XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -r models "$work/models"

run() {  # run LABEL SWAP(0|1)
  local label=$1 swap=$2 log="$work/$1.log"
  MODELS="$work/models" PREDFLOW_LOG="$log" LOADGEN_ARGS="--json" WARMUP=${WARMUP:-1} \
    tools/bench/m5_e2e.sh "$symbols" "$cycles" >"$work/$label.json" &
  local bench=$!
  if [ "$swap" = 1 ]; then
    # Wait for the pipeline, then swap until the bench ends: 2.2 → s1 → s2 …
    until grep -q 'msg="pipeline started"' "$log" 2>/dev/null; do sleep 0.2; done
    local pid i=0
    pid=$(pgrep -n -f "predflow run pipelines/m5.yaml")
    while kill -0 $bench 2>/dev/null; do
      sleep "$every"
      i=$((i + 1))
      rm -rf "$work/models/normal_day/3.$((i - 1))"
      cp -r "$work/models/normal_day/2.2" "$work/models/normal_day/3.$i"
      sed -i "s/^name: .*/name: lstm_normal_swap_$i/" "$work/models/normal_day/3.$i/model.yaml"
      kill -HUP "$pid" 2>/dev/null || break
    done
    rm -rf "$work"/models/normal_day/3.*
    echo "$label: $(grep -c 'msg="model swapped"' "$log") swaps"
  fi
  wait $bench
  python3 - "$work/$label.json" "$label" "$work/$label.log" <<'PY'
import datetime, json, re, statistics, sys
text = open(sys.argv[1]).read()
doc = json.loads(text[text.index('{'):])
cycles = [c for c in doc["cycles"] if not c.get("warmup") and c["stages"].get("redis", {}).get("last_ms") is not None]
last = [c["stages"]["redis"]["last_ms"] for c in cycles]
med = statistics.median(last)
# When each swap finished (the predflow log's ts), in Unix ms.
swaps = []
for line in open(sys.argv[3], errors="replace"):
    if 'msg="model swapped"' in line:
        m = re.search(r"ts=(\S+)", line)
        if m:
            swaps.append(datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp() * 1000)
# A cycle is "around a swap" when a swap ended from 1 s before its t0 (the window collecting,
# the load on the CPU) to its last prediction.
around = [c["stages"]["redis"]["last_ms"] for c in cycles
          if any(c["t0_unix_ms"] - 1000 <= s <= c["t0_unix_ms"] + c["stages"]["redis"]["last_ms"] for s in swaps)]
print(f"{sys.argv[2]}: last pred per cycle (ms): {', '.join(f'{x:.0f}' for x in last)}; median {med:.0f}, worst {max(last):.0f} = {max(last) / med:.2f} x median")
if swaps:
    worst = max(around) if around else float("nan")
    print(f"{sys.argv[2]}: {len(around)} cycles around a swap: {', '.join(f'{x:.0f}' for x in around)}; worst {worst:.0f} = {worst / med:.2f} x median")
PY
}
run baseline 0
run swapping 1
