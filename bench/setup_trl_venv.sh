#!/usr/bin/env bash
# Create the peer's own virtual environment (.venv-trl, gitignored) with trl 1.12 on the CPU build of PyTorch.
# The torch bound keeps pip on the CPU wheel (an unbounded torch resolves to a multi-GB CUDA build on CPU machines).
# Usage: bash bench/setup_trl_venv.sh            (idempotent: re-running only checks the install)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${TRL_VENV:-.venv-trl}"
PY="${PYTHON:-python}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip || echo "(pip self-upgrade skipped)"
# trl 1.12 pulls transformers, accelerate and datasets; peft is its optional LoRA dependency.
"$VENV/bin/python" -m pip install --quiet 'trl==1.12.*' 'torch>=2.4,<2.14' 'peft>=0.13' 'tokenizers'
"$VENV/bin/python" - <<'PY'
import torch, transformers, trl, peft
print(f"trl {trl.__version__}  torch {torch.__version__}  transformers {transformers.__version__}  peft {peft.__version__}")
PY
