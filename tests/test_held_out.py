"""Training must make the policy better where the paper measures it: greedy decoding on held-out prompts.

The README's run (``configs/tiny_mt.yaml``: 100 rollouts of 64 prompts) with the holistic reward alone, started from the
tiny SFT policy (``tiny:mt-seq2seq``, built by the SFT stage on sloppy demonstrations, so greedy chrF has headroom). One
``trainer.test`` after training reports the trained policy (``test/*``) and the starting policy (``test/baseline/*``) on
the same held-out prompts. A defect that makes PPO harm the policy (the value loss through the shared trunk, a too-large
step, a sign error in the advantages, dropout in the PPO passes) lowers the trained policy's greedy chrF below the
baseline's and fails this test.
"""

from alarm_pl.cli import cli_main


def test_training_raises_held_out_greedy_chrf(tmp_path):
    cli = cli_main(
        [
            "--config",
            "configs/tiny_mt.yaml",
            "--trainer.val_check_interval",
            "1000",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.enable_model_summary",
            "false",
            "--trainer.enable_checkpointing",
            "false",
            "--trainer.default_root_dir",
            str(tmp_path),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--model.generations_dir",
            str(tmp_path / "generations"),
            "--model.reward.strategy",
            "holistic_only",
            "--model.selection.mode",
            "fixed",
            "--model.selection.aspects",
            "[]",
        ],
        run=False,
    )
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    metrics = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]
    start, trained = metrics["test/baseline/chrf"], metrics["test/chrf"]
    # measured (seed 0, 256 test prompts): chrF 73.44 → 77.85, BLEU 53.83 → 62.89; at 40 rollouts of 32 prompts the
    # gain was still within noise (74.18 → 73.95 on 128 prompts), hence the full run
    assert trained > start + 1.0, f"greedy held-out chrF {start:.2f} → {trained:.2f}: training did not improve it"
    assert metrics["test/bleu"] > metrics["test/baseline/bleu"], metrics
