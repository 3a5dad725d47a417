"""The real entry point, in-process: every shipped YAML parses; a tiny fit → checkpoint → resume → test → export."""

import csv
import glob
import json
from pathlib import Path

import pytest
import torch

from alarm_pl.callbacks.selection import AspectSelection
from alarm_pl.cli import cli_main
from alarm_pl.reward_training import RewardModelModule
from alarm_pl.sft import SFTModule
from tests.helpers import RewardProbe

CONFIGS = sorted(glob.glob(str(Path(__file__).parents[1] / "configs" / "*.yaml")))


@pytest.mark.parametrize("config", CONFIGS, ids=[Path(c).name for c in CONFIGS])
def test_every_config_parses_and_has_a_header(config):
    text = Path(config).read_text()
    assert text.startswith("#"), f"{config} must start with a comment saying what it runs"
    # instantiates module, data and trainer (on the CPU here), loads nothing heavy
    cli = cli_main(["--config", config, "--trainer.accelerator", "cpu", "--trainer.precision", "32-true"], run=False)
    if isinstance(cli.model, SFTModule):
        assert cli.model.scoring.holistic_scorer is not None and cli.model.max_target_length
    elif isinstance(cli.model, RewardModelModule):
        assert "{response}" in cli.model.template and cli.model.max_length > 0
    else:
        assert cli.model.reward_config.strategy in ("holistic_only", "aspect_only", "weighted_sum", "hierarchical")


def test_dotted_overrides_reach_the_module():
    cli = cli_main(
        [
            "--config",
            str(Path(CONFIGS[0]).parent / "tiny_mt.yaml"),
            "--model.ppo.clip_range",
            "0.1",
            "--trainer.max_steps",
            "7",
            "--model.reward.threshold",
            "0.25",
        ],
        run=False,
    )
    assert cli.model.ppo_config.clip_range == 0.1
    assert cli.model.reward_config.threshold == 0.25
    assert cli.trainer.max_steps == 7


def test_help_documents_dataclass_fields(capsys):
    with pytest.raises(SystemExit):
        cli_main(["fit", "--model.help", "alarm_pl.module.ALaRMModule"])
    out = capsys.readouterr().out
    assert "--model.reward.threshold" in out and "passes the gate" in out  # the field docstring is the help
    assert "--model.ppo.target_kl" in out


def _common(tmp_path):
    return [
        "--config",
        str(Path(CONFIGS[0]).parent / "tiny_mt.yaml"),
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
        "--data.init_args.batch_size",
        "8",
        "--data.init_args.num_val",
        "8",
        "--data.init_args.num_test",
        "12",
        "--model.generation.max_new_tokens",
        "16",
        "--model.selection.num_prompts",
        "8",
        "--model.selection.min_pairs",
        "1",
        "--trainer.val_check_interval",
        "2",
    ]


def _metrics(tmp_path):
    rows = []
    for path in sorted(glob.glob(str(tmp_path / "logs" / "*" / "metrics.csv"))):
        rows.extend(csv.DictReader(open(path)))
    return rows


def test_fit_resume_test_export(tmp_path):
    cli = cli_main(["fit", *_common(tmp_path), "--trainer.max_steps", "2", "--export_dir", str(tmp_path / "export")])
    assert cli.trainer.global_step == 2  # max_steps counts rollouts, not optimizer steps
    ckpt = sorted(glob.glob(str(tmp_path / "logs" / "*" / "checkpoints" / "*.ckpt")))[-1]
    state = torch.load(ckpt, weights_only=False)
    assert "kl_controller" in state and all(
        "lora_" in k or "value_head" in k or "normalizers" in k for k in state["state_dict"]
    ), "checkpoint keeps trainable weights only"
    beta = state["kl_controller"]["value"]
    assert beta != 0.05  # the adaptive controller moved and its state was saved
    selection = [v for k, v in state["callbacks"].items() if "AspectSelection" in k][0]
    assert selection["active"] and len(selection["history"]) == 1  # auto: decided once, by the selection pass
    assert selection["history"][0]["rollout"] == 0  # ... before the first rollout (and its PPO update)

    resumed = cli_main(["fit", *_common(tmp_path), "--trainer.max_steps", "3", "--ckpt_path", ckpt])
    assert resumed.trainer.global_step == 3
    logged = [r for r in _metrics(tmp_path) if r.get("train/kl_coef")]
    assert float(logged[-1]["train/kl_coef"]) == pytest.approx(beta, rel=1e-6)  # β restored, not reset to β₀
    restored = next(c for c in resumed.trainer.callbacks if isinstance(c, AspectSelection))
    assert restored.history == selection["history"] and restored.rollouts_seen == 3  # no second selection pass

    tested = cli_main(
        ["test", *_common(tmp_path), "--ckpt_path", ckpt, "--model.generations_dir", str(tmp_path / "gen")]
    )  # the command line wins over anything in the checkpoint
    path = tested.model.eval_collector.last_path
    assert Path(path).parent == tmp_path / "gen"
    lines = [json.loads(line) for line in open(path)]
    assert len(lines) == 12 and len({r["prompt"] for r in lines}) == 12  # one line per prompt, none twice
    assert {"prompt", "generation", "reference", "holistic", "aspects", "length", "run"} <= set(lines[0])
    assert lines[0]["run"]["checkpoint"] == ckpt

    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM

    base = AutoModelForSeq2SeqLM.from_pretrained(_tiny_dir("mt-seq2seq"))
    model = PeftModel.from_pretrained(base, str(tmp_path / "export"))  # plain peft loads the exported adapter
    assert any("lora_" in n for n, _ in model.named_parameters())


def test_user_rollout_callback_on_the_trainer_sees_the_composed_rewards(tmp_path):
    probe = '[{"class_path": "tests.helpers.RewardProbe"}]'
    cli = cli_main(
        [
            "fit",
            *_common(tmp_path),
            "--trainer.max_steps",
            "2",
            "--trainer.val_check_interval",
            "null",
            "--trainer.limit_val_batches",
            "0",
            "--trainer.callbacks",
            probe,
        ]
    )
    # Lightning puts the module's own callbacks (selection, composition) after the trainer's; the probe still runs last
    names = [type(c).__name__ for c in cli.trainer.callbacks]
    assert names.index("RewardProbe") < names.index("AspectSelection") < names.index("RewardComposition")
    seen = next(c for c in cli.trainer.callbacks if isinstance(c, RewardProbe)).seen
    selection = next(c for c in cli.trainer.callbacks if isinstance(c, AspectSelection))
    assert len(seen) == 2
    for rollout in seen:
        assert rollout.token_rewards is not None and rollout.active_aspects == selection.active != ()
        assert "reward/total_mean" in rollout.stats and "selection/num_active" in rollout.stats
        # the composed reward: total_mean is the mean over responses of each response's reward sum
        assert float(rollout.token_rewards.sum()) / rollout.batch_size == pytest.approx(
            rollout.stats["reward/total_mean"], rel=1e-5
        )
    logged = [r for r in _metrics(tmp_path) if r.get("train/probe/token_reward_sum")]
    assert len(logged) == 2  # what a user callback adds reaches the logs


def _tiny_dir(name):
    from alarm_pl.assets.tiny import ensure_tiny_asset

    return str(ensure_tiny_asset(name))
