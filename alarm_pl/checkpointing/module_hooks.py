"""What a PPO module's checkpoint holds and which checkpoints it accepts (``ALaRMModule``'s checkpoint hooks).

A checkpoint keeps only what training changes: the trainable weights (adapter and value head, or every weight under
full fine-tuning), the normalisers' buffers and the KL controller's β; no hyper-parameters (the YAML is the source
of truth: LightningCLI would otherwise merge saved ones over the command line of ``test --ckpt_path``). Loading
refuses a checkpoint whose fingerprint (policy, scorers, strategy, selection) differs from the run's
(``checkpointing/fingerprint.py``).

The module provides ``policy``, ``scoring``, ``kl_controller``, ``reward_config`` and ``selection_config``.
"""

from __future__ import annotations

from lightning.pytorch.utilities import rank_zero_warn

from alarm_pl.checkpointing import fingerprint


class PolicyCheckpointHooks:
    """``on_save_checkpoint`` / ``on_load_checkpoint`` of a PPO module (see the module docstring)."""

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep only what training changes: trainable weights (adapter, value head) and normaliser buffers."""
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {
            k: v for k, v in checkpoint["state_dict"].items() if k in trainable or k.startswith("scoring.normalizers.")
        }
        checkpoint["kl_controller"] = self.kl_controller.state_dict()
        # LightningCLI would merge saved hyper-parameters over the command line of `test --ckpt_path` (decoding,
        # output paths); the YAML is the source of truth, so a checkpoint carries none.
        checkpoint.pop("hyper_parameters", None)
        fingerprint.stamp(checkpoint, self.checkpoint_fingerprint())

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse a checkpoint of another configuration (``checkpointing/fingerprint.py``), then restore β."""
        super().on_load_checkpoint(checkpoint)  # GenerationEvaluation: the checkpoint's step names the test files
        self.policy.load()
        fingerprint.check(checkpoint, self.checkpoint_fingerprint(), self.trainer.ckpt_path, rank_zero_warn)
        if "kl_controller" in checkpoint:
            self.kl_controller.load_state_dict(checkpoint["kl_controller"])

    def checkpoint_fingerprint(self) -> dict:
        """The settings a checkpoint must share with the run that loads it: policy, scorers, strategy, selection."""
        selection = self.selection_config
        return {
            "module": type(self).__name__,
            **self.policy.fingerprint(),
            "strategy": self.reward_config.strategy,
            "scorers": fingerprint.scorers_fingerprint([self.scoring.holistic_scorer, *self.scoring.aspect_scorers]),
            "selection": f"{selection.mode} among {selection.aspects or self.scoring.aspect_names}",
        }
