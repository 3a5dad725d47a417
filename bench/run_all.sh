#!/usr/bin/env bash
# Run the alarm_pl benchmark and its trl peer on the same tiny causal workload, one after the other, and print the
# per-phase table and the ratio of episodes/s (alarm_pl ÷ trl). See bench/README.md.
# Environment: ROLLOUTS (10), WARMUP (2), THREADS (1: torch intra-op threads for both; see README), PYTHON (python),
# TRL_VENV (.venv-trl, created by bench/setup_trl_venv.sh when missing), ALARM_PL_CACHE (where the tiny models live),
# BENCH_OUT (directory for the two logs; default a new temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
ROLLOUTS="${ROLLOUTS:-10}"
WARMUP="${WARMUP:-2}"
THREADS="${THREADS:-1}"
PY="${PYTHON:-python}"
TRL_VENV="${TRL_VENV:-.venv-trl}"
OUT="${BENCH_OUT:-$(mktemp -d -t bench_all.XXXXXX)}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false TRL_EXPERIMENTAL_SILENCE=1

if [ ! -x "$TRL_VENV/bin/python" ]; then
  echo "== $TRL_VENV missing: creating it (bench/setup_trl_venv.sh)"
  TRL_VENV="$TRL_VENV" bash bench/setup_trl_venv.sh
fi
echo "== machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== building the tiny assets once (alarm_pl.assets.tiny), so that neither timed run builds them"
"$PY" -c "from alarm_pl.assets.tiny import ensure_tiny_asset as e; print(e('bench-causal')); print(e('bench-reward'))"

echo "== alarm_pl ($ROLLOUTS rollouts after $WARMUP warm-up, $THREADS thread(s)); log: $OUT/alarm.log"
"$PY" bench/bench_alarm.py --config configs/bench_causal.yaml --rollouts "$ROLLOUTS" --warmup "$WARMUP" \
  --threads "$THREADS" > "$OUT/alarm.log" 2>&1 || { tail -30 "$OUT/alarm.log"; exit 1; }
sed -n '/^alarm_pl: /,/^episodes/p' "$OUT/alarm.log"

echo "== trl ($ROLLOUTS rollouts after $WARMUP warm-up, $THREADS thread(s)); log: $OUT/trl.log"
"$TRL_VENV/bin/python" bench/bench_trl.py --rollouts "$ROLLOUTS" --warmup "$WARMUP" --threads "$THREADS" \
  > "$OUT/trl.log" 2>&1 || { tail -30 "$OUT/trl.log"; exit 1; }
sed -n '/^trl: /,/^episodes/p' "$OUT/trl.log"

echo "== comparison (load now $(cut -d' ' -f1-3 /proc/loadavg))"
"$PY" bench/compare.py "$OUT/alarm.log" "$OUT/trl.log"
