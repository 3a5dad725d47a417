"""The progress bar the CLI installs: one bar for the whole run, in the unit the module trains in.

PPO (a module with ``ppo_config``): ``rollouts: 37/100`` with the last rollout's holistic reward (the scorer's raw,
oriented value, ``train/holistic_raw``), its KL to the reference policy (``train/kl``, summed over tokens) and its mean
response length (``train/response_length``). Other modules (SFT): ``steps: k/N`` with ``train/loss``. Lightning's
default bar counts the batches of each epoch (``Epoch 3/-2`` when ``max_epochs`` is -1), which says nothing to a PPO
run, and shows the logger's version number (``v_num``); this one shows neither. Metrics a module adds with
``prog_bar=True`` are shown after these. While the bar is shown, Lightning's console messages (``rank_zero_info``, e.g.
the aspect selection's result) go through ``tqdm.write``: each on its own line above the bar, not glued to its end.
"""

from __future__ import annotations

import logging
import math
import sys
from contextlib import AbstractContextManager
from typing import Any, Optional

from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

LIGHTNING_LOGGER = "lightning.pytorch"  # rank_zero_info's logger; its console handler: lightning/pytorch/__init__.py
PPO_METRICS = {"reward": "train/holistic_raw", "kl": "train/kl", "len": "train/response_length"}
STEP_METRICS = {"loss": "train/loss"}


def wants_default_progress_bar(trainer_config: dict) -> bool:
    """Whether the trainer configuration leaves the progress bar to us: enabled, and no ``ProgressBar`` among its
    callbacks."""
    callbacks = trainer_config.get("callbacks") or []
    callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
    return trainer_config.get("enable_progress_bar") is not False and not any(
        isinstance(c, ProgressBar) for c in callbacks
    )


def _is_ppo(module: Any) -> bool:
    return hasattr(module, "ppo_config")


def run_total(trainer: Any) -> Optional[int]:
    """Optimizer steps of the whole run as Lightning counts them (rollouts for PPO); None when unbounded."""
    total = trainer.estimated_stepping_batches
    return None if total is None or math.isinf(total) else int(total)


def bar_metrics(callback_metrics: dict, ppo: bool, extra: dict) -> dict[str, str]:
    """What the bar shows: the chosen metrics present in ``callback_metrics`` (3 significant digits), then the
    module's own progress-bar metrics (``extra``) that are not among them, without ``v_num``."""
    chosen = PPO_METRICS if ppo else STEP_METRICS
    shown = {label: f"{float(callback_metrics[key]):.3g}" for label, key in chosen.items() if key in callback_metrics}
    shown.update({k: v for k, v in extra.items() if k != "v_num" and k not in chosen.values()})
    return shown


def _has_console_handler(name: str = LIGHTNING_LOGGER) -> bool:
    """Whether the logger writes to the terminal itself (Lightning's default); otherwise its records go wherever the
    application sent them, and are left there."""
    return any(
        isinstance(h, logging.StreamHandler) and h.stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
        for h in logging.getLogger(name).handlers
    )


class RunProgressBar(TQDMProgressBar):
    """A TQDM progress bar over the run's rollouts (PPO) or optimizer steps (see the module docstring)."""

    _log_redirect: Optional[AbstractContextManager] = None

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._redirect_console_log(True)
        bar = self.train_progress_bar
        bar.reset(total=run_total(trainer))
        bar.initial = trainer.global_step  # a resumed run continues where it stopped
        bar.n = trainer.global_step
        bar.set_description("rollouts" if _is_ppo(pl_module) else "steps")

    def on_train_epoch_start(self, trainer, *_: Any) -> None:
        pass  # one bar for the run, not one per epoch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        bar = self.train_progress_bar
        if bar is None or bar.disable:
            return
        bar.n = trainer.global_step
        bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
        bar.refresh()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def on_train_end(self, trainer, pl_module) -> None:
        self._redirect_console_log(False)
        super().on_train_end(trainer, pl_module)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._redirect_console_log(False)
        super().on_exception(trainer, pl_module, exception)

    def _redirect_console_log(self, on: bool) -> None:
        """Route Lightning's console handler through ``tqdm.write`` while the bar is shown (``on``), or restore it."""
        if on and self._log_redirect is None and not self.train_progress_bar.disable and _has_console_handler():
            self._log_redirect = logging_redirect_tqdm([logging.getLogger(LIGHTNING_LOGGER)], tqdm_class=Tqdm)
            self._log_redirect.__enter__()
        elif not on and self._log_redirect is not None:
            self._log_redirect.__exit__(None, None, None)
            self._log_redirect = None

    def get_metrics(self, trainer, pl_module) -> dict:
        return bar_metrics(trainer.callback_metrics, _is_ppo(pl_module), super().get_metrics(trainer, pl_module))
