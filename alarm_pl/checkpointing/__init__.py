"""Checkpoints that resume exactly and load safely.

A training checkpoint holds everything the next rollout depends on and nothing frozen: the trainable weights
(adapter and value head, or every weight under full fine-tuning) and the normalisers' buffers (``state_dict``), the
optimizer and learning-rate scheduler (Lightning), the KL controller (``kl_controller``), the selection state and
every process's random generators (callback states), the data position inside the epoch and the loop progress
(Lightning's ``loops``, through torchdata's ``StatefulDataLoader``), and a fingerprint of the configuration
(``alarm_pl``). See ``io.py`` (atomic, ``weights_only`` files), ``callback.py`` (``last.ckpt`` at the end, on
SIGTERM and on faults), ``resume_state.py`` and ``fingerprint.py``.
"""

from alarm_pl.checkpointing.callback import RunCheckpoint, with_run_checkpoint
from alarm_pl.checkpointing.io import CheckpointError, SafeCheckpointIO, install_safe_checkpoint_io, read_checkpoint
from alarm_pl.checkpointing.resume_state import ResumeState

__all__ = [
    "CheckpointError",
    "ResumeState",
    "RunCheckpoint",
    "SafeCheckpointIO",
    "install_safe_checkpoint_io",
    "read_checkpoint",
    "with_run_checkpoint",
]
