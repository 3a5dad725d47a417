#!/usr/bin/env bash
# Create a peer's own virtual environment (gitignored) on the CPU build of PyTorch.
#   bash bench/setup_trl_venv.sh        → .venv-trl     trl 1.12 (trl.experimental.ppo.PPOTrainer, causal spec)
#   bash bench/setup_trl_venv.sh 0.11   → .venv-trl011  trl 0.11.4, the last release of the original PPOTrainer with
#                                         encoder-decoder support (the lineage of the paper's authors; seq2seq spec)
# The torch bound keeps pip on the CPU wheel (an unbounded torch resolves to a multi-GB CUDA build on CPU machines).
# TRL_VENV overrides the directory. Idempotent: re-running only checks the install.
set -euo pipefail
cd "$(dirname "$0")/.."
LINE="${1:-1.12}"
PY="${PYTHON:-python}"
case "$LINE" in
  1.12) VENV="${TRL_VENV:-.venv-trl}"
        # trl 1.12 pulls transformers, accelerate and datasets; peft is its optional LoRA dependency.
        PACKAGES=('trl==1.12.*' 'torch>=2.4,<2.14' 'peft>=0.13' 'tokenizers') ;;
  0.11) VENV="${TRL_VENV:-.venv-trl011}"
        # the newest versions trl 0.11.4 still runs with (transformers 4.47 dropped what its PPOTrainer imports)
        PACKAGES=('trl==0.11.4' 'transformers==4.46.3' 'peft==0.13.2' 'accelerate<1.2' 'datasets<3.2' 'numpy<2'
                  'pyarrow<18' 'rich' 'sacrebleu' 'torch>=2.4,<2.14') ;;
  *) echo "usage: bash bench/setup_trl_venv.sh [1.12|0.11]   (got '$LINE')" >&2; exit 2 ;;
esac
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip || echo "(pip self-upgrade skipped)"
"$VENV/bin/python" -m pip install --quiet "${PACKAGES[@]}"
"$VENV/bin/python" - <<'PY'
import torch, transformers, trl, peft
print(f"trl {trl.__version__}  torch {torch.__version__}  transformers {transformers.__version__}  peft {peft.__version__}")
PY
