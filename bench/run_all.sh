#!/usr/bin/env bash
# Run the alarm_pl benchmark and its trl peer on the same tiny workload, back to back, PAIRS times, and print each
# pair's per-phase table and ratio of episodes/s (alarm_pl ÷ trl), then the median over the pairs. See bench/README.md.
#   bash bench/run_all.sh            causal spec (configs/bench_causal.yaml) against trl 1.12   (.venv-trl)
#   bash bench/run_all.sh seq2seq    seq2seq spec (configs/bench_seq2seq.yaml) against trl 0.11.4 (.venv-trl011)
# Environment: PAIRS (3), ROLLOUTS (10), WARMUP (2), THREADS (1: torch intra-op threads for both; see README),
# PYTHON (python), TRL_VENV (the peer's venv, created by bench/setup_trl_venv.sh when missing), TRL_ARGS (extra
# arguments for the peer, e.g. --skip-gc-collect), ALARM_PL_CACHE (where the tiny models live), BENCH_OUT (directory
# for the logs; default a new temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
SPEC="${1:-causal}"
case "$SPEC" in
  causal)  CONFIG=configs/bench_causal.yaml;  PEER=bench/bench_trl.py;    LINE=1.12; DEFAULT_VENV=.venv-trl
           ASSETS="bench-causal bench-reward" ;;
  seq2seq) CONFIG=configs/bench_seq2seq.yaml; PEER=bench/bench_trl011.py; LINE=0.11; DEFAULT_VENV=.venv-trl011
           ASSETS="mt-seq2seq" ;;
  *) echo "usage: bash bench/run_all.sh [causal|seq2seq]   (got '$SPEC')" >&2; exit 2 ;;
esac
PAIRS="${PAIRS:-3}"
ROLLOUTS="${ROLLOUTS:-10}"
WARMUP="${WARMUP:-2}"
THREADS="${THREADS:-1}"
PY="${PYTHON:-python}"
TRL_VENV="${TRL_VENV:-$DEFAULT_VENV}"
OUT="${BENCH_OUT:-$(mktemp -d -t bench_all.XXXXXX)}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false TRL_EXPERIMENTAL_SILENCE=1

if [ ! -x "$TRL_VENV/bin/python" ]; then
  echo "== $TRL_VENV missing: creating it (bench/setup_trl_venv.sh $LINE)"
  TRL_VENV="$TRL_VENV" bash bench/setup_trl_venv.sh "$LINE"
fi
echo "== machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== building the tiny assets once (alarm_pl.assets.tiny), so that no timed run builds them"
for asset in $ASSETS; do
  "$PY" -c "from alarm_pl.assets.tiny import ensure_tiny_asset as e; print(e('$asset'))"
done

LOGS=()
for pair in $(seq 1 "$PAIRS"); do
  echo "== pair $pair/$PAIRS: alarm_pl ($ROLLOUTS rollouts after $WARMUP warm-up, $THREADS thread(s)); log: $OUT/alarm-$pair.log"
  "$PY" bench/bench_alarm.py --config "$CONFIG" --rollouts "$ROLLOUTS" --warmup "$WARMUP" \
    --threads "$THREADS" > "$OUT/alarm-$pair.log" 2>&1 || { tail -30 "$OUT/alarm-$pair.log"; exit 1; }
  sed -n '/^alarm_pl: /,/^episodes/p' "$OUT/alarm-$pair.log"
  echo "== pair $pair/$PAIRS: $PEER ${TRL_ARGS:-}; log: $OUT/trl-$pair.log"
  # shellcheck disable=SC2086  # TRL_ARGS is a list of arguments
  "$TRL_VENV/bin/python" "$PEER" --rollouts "$ROLLOUTS" --warmup "$WARMUP" --threads "$THREADS" ${TRL_ARGS:-} \
    > "$OUT/trl-$pair.log" 2>&1 || { tail -30 "$OUT/trl-$pair.log"; exit 1; }
  sed -n '/^trl[0-9]*: /,/^episodes/p' "$OUT/trl-$pair.log"
  LOGS+=("$OUT/alarm-$pair.log" "$OUT/trl-$pair.log")
done

echo "== comparison (load now $(cut -d' ' -f1-3 /proc/loadavg))"
"$PY" bench/compare.py "${LOGS[@]}"
