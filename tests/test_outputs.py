"""Outputs a newcomer can find: every command ends by naming its run directory and the files it wrote; ``validate``
and ``test`` get a directory named after what they evaluate instead of the next ``version_N``; a test from a step-N
checkpoint writes ``test-stepN.jsonl`` with ``"step": N``; the progress bar counts rollouts and shows reward, KL and
length."""

import io
import json
import logging
import re
import sys
from pathlib import Path

import pytest
from jsonargparse import Namespace

from alarm_pl.callbacks.progress import LIGHTNING_LOGGER, RunProgressBar, bar_metrics
from alarm_pl.cli import cli_main
from alarm_pl.eval.cli import main as compare_main
from alarm_pl.outputs import evaluated_source, name_evaluation_run, summary_lines, unique_name

CONFIG = str(Path(__file__).parents[1] / "configs" / "tiny_mt.yaml")


@pytest.mark.parametrize(
    "ckpt, expected",
    [
        (None, "starting-policy"),
        ("runs/tiny_mt/logs/version_3/checkpoints/epoch=3-step=100.ckpt", "version_3-step000100"),
        ("runs/tiny_mt/logs/version_3/checkpoints/last.ckpt", "version_3-last"),
        ("/downloads/my model (v2).ckpt", "my_model_v2_"),
        ("elsewhere/epoch=0-step=7.ckpt", "step000007"),
    ],
)
def test_an_evaluation_is_named_after_what_it_evaluates(ckpt, expected):
    assert evaluated_source(ckpt) == expected


def test_names_are_never_reused(tmp_path):
    assert unique_name(str(tmp_path), "test-x") == "test-x"
    (tmp_path / "test-x").mkdir()
    (tmp_path / "test-x-2").mkdir()
    assert unique_name(str(tmp_path), "test-x") == "test-x-3"


def test_a_missing_checkpoint_is_refused_before_any_directory_is_made(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["alarm_pl"])
    with pytest.raises(FileNotFoundError, match=r"test --ckpt_path .*nothere.ckpt: no such file"):
        cli_main(["test", *_common(tmp_path), "--ckpt_path", str(tmp_path / "nothere.ckpt")])
    assert not (tmp_path / "logs").exists()


def test_lightnings_default_logger_is_named_too(tmp_path):
    config = Namespace(ckpt_path=None, trainer=Namespace(logger=True, default_root_dir=str(tmp_path)))
    assert name_evaluation_run(config, "validate") == "validate-starting-policy"
    assert config.trainer.logger.class_path.endswith(("TensorBoardLogger", "CSVLogger"))
    assert config.trainer.logger.init_args.save_dir == str(tmp_path)
    chosen = Namespace(
        ckpt_path=None,
        trainer=Namespace(
            logger=Namespace(
                class_path="lightning.pytorch.loggers.CSVLogger", init_args=Namespace(save_dir="x", version="mine")
            )
        ),
    )
    assert name_evaluation_run(chosen, "test") is None and chosen.trainer.logger.init_args.version == "mine"
    off = Namespace(ckpt_path=None, trainer=Namespace(logger=False))
    assert name_evaluation_run(off, "test") is None and off.trainer.logger is False


def test_summary_lines_name_the_folder_once():
    lines = summary_lines(
        "test", "/r/test-a", {"logs": ["/r/test-a/metrics.csv", "/r/test-a/config.yaml"]}, export_dir=None
    )
    assert lines == ["test finished; run directory: /r/test-a", "  logs    /r/test-a/metrics.csv, config.yaml"]


def test_the_bar_shows_what_a_ppo_user_watches():
    metrics = {"train/holistic_raw": 41.234, "train/kl": 0.03125, "train/response_length": 14.2, "train/loss": 3.0}
    assert bar_metrics(metrics, ppo=True, extra={"v_num": 0, "mine": 1.0}) == {
        "reward": "41.2",
        "kl": "0.0312",
        "len": "14.2",
        "mine": 1.0,
    }
    assert bar_metrics(metrics, ppo=False, extra={"train/loss": 3.0}) == {"loss": "3"}  # shown once


def test_a_message_during_training_gets_its_own_line_above_the_bar(monkeypatch):
    """Lightning's console messages (the aspect selection's result) used to be glued to the end of the bar's line."""
    from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
    from lightning.pytorch.utilities import rank_zero_info

    terminal = io.StringIO()
    monkeypatch.setattr(sys, "stderr", terminal)
    lightning_log = logging.getLogger(LIGHTNING_LOGGER)
    monkeypatch.setattr(lightning_log, "handlers", [logging.StreamHandler(sys.stderr)])  # Lightning's default
    progress = RunProgressBar()
    progress._train_progress_bar = Tqdm(total=3, file=terminal, desc="rollouts")
    progress._train_progress_bar.update(1)
    progress._redirect_console_log(True)
    rank_zero_info("AspectSelection: active aspects ['grammar']")
    progress._redirect_console_log(False)
    shown = terminal.getvalue()
    assert "\rAspectSelection: active aspects ['grammar']\n\rrollouts:  33%" in shown  # bar cleared, message, bar
    assert [type(h) for h in lightning_log.handlers] == [logging.StreamHandler]  # restored after training

    monkeypatch.setattr(lightning_log, "handlers", [])  # an application that routes Lightning's log elsewhere
    progress._redirect_console_log(True)
    assert lightning_log.handlers == [] and progress._log_redirect is None  # left alone: no second copy


def _common(tmp_path):
    return [
        "--config",
        CONFIG,
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
        "--data.init_args.batch_size",
        "8",
        "--data.init_args.num_val",
        "8",
        "--data.init_args.num_test",
        "8",
        "--model.generation.max_new_tokens",
        "12",
        "--model.selection.num_prompts",
        "8",
        "--model.selection.min_pairs",
        "1",
        "--trainer.val_check_interval",
        "2",
    ]


def _summary(out: str) -> dict[str, str]:
    """category -> the rest of its line, from the end-of-command summary."""
    tail = out[out.rindex(" finished; run directory: ") :].splitlines()
    return {
        "run": tail[0].split(": ", 1)[1],
        **{m.group(1): m.group(2) for line in tail[1:] for m in [re.match(r"  (\w+)\s+(.*)$", line)] if m},
    }


def _paths(listing: str) -> list[str]:
    """'DIR/a, b' (a summary line's files: the first with its folder, the next ones in the same folder) -> paths."""
    first, *rest = listing.split(", ")
    return [first, *(str(Path(first).parent / name) for name in rest)]


def test_fit_and_test_say_where_their_outputs_went(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["alarm_pl"])
    cli_main(["fit", *_common(tmp_path), "--trainer.max_steps", "2"])
    out = capsys.readouterr().out
    run = tmp_path / "logs" / "version_0"
    ckpt = run / "checkpoints" / "epoch=0-step=2.ckpt"
    summary = _summary(out)
    assert summary["run"] == str(run)  # the validation's checkpoint, and the last.ckpt every run leaves (issue 8)
    assert _paths(summary["checkpoints"]) == [str(ckpt), str(run / "checkpoints" / "last.ckpt")]
    assert summary["logs"].startswith(str(run / "config.yaml")) and "metrics.csv" in summary["logs"]
    # the trained policy's file and, at the first validation, the starting policy's (module.evaluate_baseline)
    assert _paths(summary["generations"]) == [
        str(run / "generations" / f"val-{policy}step000002.jsonl") for policy in ("baseline-", "")
    ]
    assert "rollouts: 100%" in out and "2/2" in out and "reward=" in out and "kl=" in out and "len=" in out
    assert "v_num" not in out and "Epoch" not in out

    cli_main(["test", *_common(tmp_path), "--ckpt_path", str(ckpt)])
    out = capsys.readouterr().out
    assert f"test: evaluating the checkpoint {ckpt}" in out
    tested = tmp_path / "logs" / "test-version_0-step000002"
    assert _summary(out)["run"] == str(tested)
    trained_file = tested / "generations" / "test-step000002.jsonl"  # the checkpoint's step, not 0
    assert _paths(_summary(out)["generations"]) == [
        str(tested / "generations" / "test-baseline-step000002.jsonl"),
        str(trained_file),
    ]
    records = [json.loads(line) for line in trained_file.read_text().splitlines()]
    assert len(records) == 8 and {r["run"]["step"] for r in records} == {2}
    assert {r["run"]["checkpoint"] for r in records} == {str(ckpt)}

    for expected in ("test-starting-policy", "test-starting-policy-2"):  # a second call keeps the first's results
        cli_main(["test", *_common(tmp_path)])
        out = capsys.readouterr().out
        assert "test: no --ckpt_path given, so this evaluates the starting policy (tiny:mt-seq2seq)" in out
        assert _summary(out)["run"] == str(tmp_path / "logs" / expected)
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [
        "test-starting-policy",
        "test-starting-policy-2",
        "test-version_0-step000002",
        "version_0",
    ]

    start_file = tmp_path / "logs" / "test-starting-policy" / "generations" / "test-step000000.jsonl"
    # the policy tested is the starting policy itself: it is decoded once, not again as its own baseline
    assert [p.name for p in start_file.parent.iterdir()] == [start_file.name]
    assert compare_main(["compare", str(start_file), str(trained_file), "--out", str(tmp_path / "cmp")]) == 0
    systems = json.loads((tmp_path / "cmp" / "results.json").read_text())["systems"]
    assert systems == ["test-step000000", "test-step000002"]
