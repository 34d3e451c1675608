#!/usr/bin/env bash
# End to end: pipelines/m5.yaml on the devstack against tools/loadgen, as docs/performance.md
# (## End to end) reports it. Starts the devstack when it is not running, seeds N symbols,
# starts predflow with the window closed by count, runs the measured cycles and stops
# predflow again (the devstack keeps running).
#
#   tools/bench/m5_e2e.sh N [CYCLES] [-- extra predflow arguments, e.g. --set nodes.normal_model.concurrency=2]
#
# Environment: BUILD (default build), MODELS (default models), WARMUP (default 1),
# LOADGEN_ARGS (more loadgen flags, e.g. --json), PREDFLOW_LOG (default /tmp/predflow-e2e.log),
# RECORD=FILE (run `predflow record -o FILE` beside it for the whole run, warm-up included).
# Above 10,000 symbols there is no WebSocket stage unless LOADGEN_ARGS names --ws-port.
# Nothing sets OPENBLAS_NUM_THREADS: the model nodes set their threads themselves.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
symbols=$1
cycles=${2:-3}
shift $(( $# >= 2 ? 2 : 1 ))
[ "${1:-}" = "--" ] && shift
build=${BUILD:-build}
log=${PREDFLOW_LOG:-/tmp/predflow-e2e.log}

tools/devstack start >/dev/null
eval "$(tools/devstack env)"
"$build/tools/loadgen/predflow_loadgen" --symbols "$symbols" --seed-only >/dev/null

PREDFLOW_MODELS=${MODELS:-models} PREDFLOW_WINDOW=2s PREDFLOW_WINDOW_MAX_SYMBOLS=$symbols \
  "$build/predflow" run pipelines/m5.yaml "$@" >"$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:${PREDFLOW_HTTP_PORT:-9464}/readyz" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { echo "predflow exited; its log: $log" >&2; tail -20 "$log" >&2; exit 1; }
  sleep 0.5
done
if [ -n "${RECORD:-}" ]; then
  "$build/predflow" record -o "$RECORD" 2>"$RECORD.log" &
  recorder=$!
  trap 'kill -INT $recorder 2>/dev/null; wait $recorder 2>/dev/null || true; kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
  sleep 1
fi
# A WebSocket client holds at most max_held_symbols (10,000) updates between frames, by
# design, so above that it never sees a whole cycle: leave that stage out unless asked.
ws_args=()
if (( symbols > 10000 )) && [[ ${LOADGEN_ARGS:-} != *--ws-port* ]]; then
  echo "note: no WebSocket stage above 10,000 symbols (a client holds at most max_held_symbols updates); LOADGEN_ARGS=--ws-port PORT to force it" >&2
  ws_args=(--ws-port 0)
fi
"$build/tools/loadgen/predflow_loadgen" --symbols "$symbols" --no-seed --cycles "$cycles" --warmup "${WARMUP:-1}" \
  --pid $pid "${ws_args[@]}" ${LOADGEN_ARGS:-}
