#!/usr/bin/env bash
# GPU check (not yet run: the development machine has no GPU). Runs configs/mt.yaml and configs/qa.yaml at full size
# with dummy weights (configs/smoke/{mt,qa}_gpu.yaml): mT5-base / T5-large with LoRA in bf16, UltraRM-13B in 4-bit
# NF4 (both tasks) and 8-bit (MT), a few rollouts each, and writes per-phase seconds, tokens/s and peak GPU memory to
# $OUT/results.{json,md} for bench/README.md. Budget: under 10 minutes on one H100 (each step has a time limit).
# Environment: OUT (runs/gpu_check), ROLLOUTS (3), RUNS ("mt:4 mt:8 qa:4"), PREPARE_LIMIT (240 s), RUN_LIMIT (110 s),
# PYTHON (python), ALARM_PL_CACHE (where the dummy checkpoints go: the 13B one takes 26 GB of disk).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu_check}"
ROLLOUTS="${ROLLOUTS:-3}"
RUNS="${RUNS:-mt:4 mt:8 qa:4}"
PY="${PYTHON:-python}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "bench/gpu_check.sh: no CUDA device here; nothing was run (see 'python bench/gpu_check.py plan')" >&2
  exit 2
fi
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
echo "== prepare: build the dummy checkpoints once (limit ${PREPARE_LIMIT:-240} s)"
timeout "${PREPARE_LIMIT:-240}" "$PY" bench/gpu_check.py prepare --out "$OUT" 2>&1 | tee "$OUT/prepare.log"
status=0
for run in $RUNS; do
  echo "== run $run: $ROLLOUTS rollouts, a validation and a test pass (limit ${RUN_LIMIT:-110} s)"
  if ! timeout "${RUN_LIMIT:-110}" "$PY" bench/gpu_check.py run --run "$run" --rollouts "$ROLLOUTS" --out "$OUT" \
      > "$OUT/${run/:/-}bit.log" 2>&1; then
    echo "run $run failed or ran out of time; last lines of $OUT/${run/:/-}bit.log:"; tail -20 "$OUT/${run/:/-}bit.log"
    status=1
  fi
done
echo "== results ($OUT/results.md)"
"$PY" bench/gpu_check.py report --out "$OUT"
exit $status
