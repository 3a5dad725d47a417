"""What the commands print besides their work.

- Known, harmless library noise is filtered, each filter narrowly (one logger or one message) and with the reason it is
  harmless here; every other warning is shown as before.
- A failure ends the output with one message saying what went wrong and, for the problems a newcomer meets first
  (no GPU, no hub), what to do; the traceback is printed only when ``ALARM_PL_DEBUG=1`` is set.

Nothing happens at import: the entry points call ``quiet_library_noise`` and ``run_command``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from typing import Any, Callable

DEBUG_ENV = "ALARM_PL_DEBUG"

# (logger, message prefix, why it is harmless here). Filters sit on the logger that creates the record.
LOG_NOISE = [
    (
        "lightning.pytorch.utilities.rank_zero",
        "💡 Tip:",
        "Lightning's pointer to its cloud services (litlogger, litmodels), printed by every Trainer",
    ),
    ("lightning.fabric.utilities.rank_zero", "💡 Tip:", "the same, when the fabric logger emits it"),
    (
        "bitsandbytes.backends.cpu.ops",
        "Failed to load CPU gemm_4bit_forward",
        "bitsandbytes looks for the optional "
        "`kernels` package for 4-bit inference on CPUs with AVX-512 BF16; this project quantizes on CUDA only "
        "(PolicyConfig.quantization_bits refuses a CPU)",
    ),
    (
        "lightning.pytorch.utilities.rank_zero",
        "The following callbacks returned in `LightningModule.configure_callbacks`"
        " will override existing callbacks passed to Trainer: AspectSelection, RewardComposition",
        "a test run by the "
        "trainer right after fit (--test_after_fit) re-installs the PPO module's own two callbacks over themselves",
    ),
]

# (logger, message prefix, why): shown the first time, then dropped.
LOG_ONCE = [
    (
        "bitsandbytes.autograd._functions",
        "MatMul8bitLt: inputs will be cast from",
        "LLM.int8 multiplies in float16 "
        "by design and bitsandbytes says so on every 8-bit matrix product (hundreds of lines per rollout)",
    ),
]

# (message regex, why it is harmless here); any warning category.
WARNING_NOISE = [
    (
        r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        "Lightning 2.6's own use of a torch pytree API that torch 2.13 deprecates; nothing for the user to change",
    ),
    (
        r"`is_gradient_checkpointing` is deprecated",
        "peft reads a transformers 5 attribute that is being renamed; nothing for the user to change",
    ),
    (
        r"You have overridden `transfer_batch_to_device` in `LightningModule` but have passed in a "
        r"`LightningDataModule`",
        "intended: the modules move no batch, prompt batches are texts tokenized on the "
        "device in the step (ALaRMModule.transfer_batch_to_device)",
    ),
]

# Manually optimised modules (PPO) set train/eval mode themselves for each phase of a rollout, so Lightning's check
# that every module is in train mode when training starts does not apply to them (see ``quiet_eval_mode_warning``).
EVAL_MODE_WARNING = r"Found \d+ module\(s\) in eval mode at the start of training"


def debug_requested() -> bool:
    """Whether ``ALARM_PL_DEBUG`` asks for tracebacks and the parser's full reports (any value but '', 0, false)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


class _DropPrefix(logging.Filter):
    """Drops the records whose message starts with ``prefix``; with ``once``, all but the first."""

    def __init__(self, prefix: str, once: bool = False) -> None:
        super().__init__()
        self.prefix, self.once, self.seen = prefix, once, False

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.prefix):
            return True
        first, self.seen = not self.seen, True
        return self.once and first


def quiet_library_noise() -> None:
    """Install the filters of ``LOG_NOISE``, ``LOG_ONCE`` and ``WARNING_NOISE`` (idempotent)."""
    for entries, once in ((LOG_NOISE, False), (LOG_ONCE, True)):
        for name, prefix, _ in entries:
            logger = logging.getLogger(name)
            if not any(isinstance(f, _DropPrefix) and f.prefix == prefix for f in logger.filters):
                logger.addFilter(_DropPrefix(prefix, once))
    for pattern, _ in WARNING_NOISE:
        warnings.filterwarnings("ignore", message=pattern)


def quiet_eval_mode_warning(module: Any) -> None:
    """Drop Lightning's "modules in eval mode at the start of training" warning for a manually optimised module (PPO:
    generation, scoring and the update passes each choose their mode); other modules keep it."""
    if getattr(module, "automatic_optimization", True) is False:
        warnings.filterwarnings("ignore", message=EVAL_MODE_WARNING)


def quiet_checkpoint_dirpath_warning() -> None:
    """Drop ``ModelCheckpoint``'s "The dirpath has changed" warning in ``validate``/``test``: they write no checkpoint,
    and their run directory differs from the training run's on purpose (``outputs.py``). ``fit`` keeps it."""
    warnings.filterwarnings("ignore", message=r"The dirpath has changed from")


# (message regex, what to do)
HINTS = [
    (
        r"No supported gpu backend found|CUDA is not available|no CUDA GPUs are available|Found no NVIDIA driver",
        "this configuration asks for a GPU and this machine has none: for the paper's setups on a CPU add its smoke "
        "overlay (`--config configs/mt.yaml --config configs/smoke/mt_cpu.yaml`, likewise qa), or try "
        "configs/tiny_mt.yaml; `--trainer.accelerator cpu --trainer.precision 32-true` runs any configuration on the "
        "CPU, slowly",
    ),
    (
        r"HubUnavailableError",
        "without the hub, the CPU smoke overlays (configs/smoke/*_cpu.yaml) and the tiny "
        "configurations (configs/tiny_*.yaml) run on dummy or tiny offline models",
    ),
]


def hint_for(error: BaseException) -> str:
    """What to do about ``error``, when its type and message (or a cause's) are one of the known problems; ''
    otherwise."""
    text = "\n".join(f"{type(e).__name__}: {e}" for e in _chain(error))
    return next((hint for pattern, hint in HINTS if re.search(pattern, text)), "")


def _chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


UNION_FAILURE = "Does not validate against any of the Union subtypes"
"""How jsonargparse words a class that failed to instantiate: it lists each subtype's error and dumps the whole
given configuration after them."""


def _unwrap_union_failure(message: str) -> str:
    """The errors themselves (``model.generation: need 1 <= max_new_tokens ...``) from jsonargparse's report of a
    failed instantiation, without its subtype lists and configuration dump; other messages unchanged."""
    if not message.startswith(UNION_FAILURE):
        return message
    found = [m.group(1) for m in re.finditer(r"^\s*- (.*)$", message, flags=re.MULTILINE)]
    causes = [text for text in found if not text.startswith((UNION_FAILURE, "Expected a <class 'NoneType'>"))]
    return "; ".join(causes) or message


def failure_report(error: BaseException) -> str:
    """The lines printed for a failed command: where the traceback is, then the error and the hint (last)."""
    message = _unwrap_union_failure(str(error).strip()) or type(error).__name__
    hint = hint_for(error)
    return (
        f"alarm_pl: the command failed with {type(error).__name__} (set {DEBUG_ENV}=1 for the traceback)\n"
        f"error: {message}" + (f"\nwhat to do: {hint}" if hint else "") + "\n"
    )


def run_command(entry: Callable[[], Any]) -> None:
    """Run an entry point and exit: status 0 (or the int it returns), 1 with ``failure_report`` on an exception,
    which is re-raised instead when ``ALARM_PL_DEBUG`` is set. Parser errors exit 2 on their own."""
    quiet_library_noise()
    try:
        status = entry()
    except Exception as error:  # noqa: BLE001 - every failure gets the same one-message report
        if debug_requested():
            raise
        sys.stdout.flush()
        sys.stderr.write(failure_report(error))
        sys.exit(1)
    sys.exit(status if isinstance(status, int) else 0)
