#!/bin/bash
# The GPU check, as run through the device tool (docs/performance.md, ## Inference): builds
# this benchmark standalone against PyTorch's libtorch, then runs it on cuda:0 (latency
# table, correctness checks, a real out-of-memory, CUDA graph replay) and on the CPU.
# Writes env.txt, build.log, gpu.txt, gpu.jsonl, cpu.txt under $OUT.
#   OUT=/tmp/out DEVICE=cuda:0 tools/bench/infer/gpu_run.sh      (from the repository root)
set -u
OUT=${OUT:-/tmp/predflow-infer-out}
DEVICE=${DEVICE:-cuda:0}
BUILD=${BUILD:-/tmp/predflow-infer-bench}
JOBS=${JOBS:-16}
mkdir -p "$OUT"
{
  date -u +%Y-%m-%dT%H:%M:%SZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available() and torch.cuda.get_device_name(0))'
  nproc; uname -r
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
configure() {
  cmake -S tools/bench/infer -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
    -DCMAKE_CUDA_ARCHITECTURES=90 "$@" >> "$OUT/build.log" 2>&1
}
t0=$(date +%s)
if ! { configure && make -C "$BUILD" -j"$JOBS" >> "$OUT/build.log" 2>&1; }; then
  echo "build with CUDA graphs failed; retrying without" | tee -a "$OUT/build.log"
  configure -DPREDFLOW_BENCH_CUDA_GRAPHS=OFF && make -C "$BUILD" -j"$JOBS" >> "$OUT/build.log" 2>&1 || {
    tail -80 "$OUT/build.log"; exit 1; }
fi
echo "build took $(( $(date +%s) - t0 )) s"
BENCH="$BUILD/predflow_infer_bench"
EXTRA=""
[ "$DEVICE" != cpu ] && EXTRA="--real-oom"
timeout 240 "$BENCH" --device "$DEVICE" --iterations 200 --warmup 20 --json "$OUT/gpu.jsonl" --check $EXTRA 2>&1 | tee "$OUT/gpu.txt"
echo "gpu bench exit ${PIPESTATUS[0]}"
timeout 90 "$BENCH" --device cpu --iterations 100 --warmup 10 2>&1 | tee "$OUT/cpu.txt"
echo "cpu bench exit ${PIPESTATUS[0]}"
