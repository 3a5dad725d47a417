"""Calibration (``python -m alarm_pl.calibrate``): the snippet format, and the real command on the tiny MT config."""

import pytest
import torch
import yaml

from alarm_pl.calibrate import calibration_snippet, main
from alarm_pl.rewards.normalize import FixedNormalizer

TINY = [
    "--config",
    "configs/tiny_mt.yaml",
    "--trainer.logger",
    "false",
    "--data.init_args.batch_size",
    "8",
    "--model.generation.max_new_tokens",
    "24",
]


def test_calibration_snippet_parses_with_provenance():
    values = torch.tensor([-2.0, -4.0, 0.5, 1.0, -7.25])
    text = calibration_snippet("ultrarm", values, "UltraRM-13B 4-bit\nEuroparl es-en train[:5]", date="2024-03-11")
    lines = text.splitlines()
    assert lines[0] == "# ultrarm: FixedNormalizer fitted on n=5 values, 2024-03-11"
    assert lines[1:3] == ["# UltraRM-13B 4-bit", "# Europarl es-en train[:5]"]
    parsed = yaml.safe_load(text)["normalizer"]
    assert parsed["class_path"] == "alarm_pl.rewards.normalize.FixedNormalizer"
    # mean = -11.75/5 = -2.35; deviations .35 -1.65 2.85 3.35 -4.9, squares sum 46.2, /(5-1) = 11.55,
    # sample std sqrt(11.55) = 3.3985 -> 4 significant digits 3.399
    assert parsed["init_args"] == {"mean": -2.35, "std": 3.399}
    FixedNormalizer(**parsed["init_args"])  # the snippet builds a valid normaliser
    tiny = yaml.safe_load(calibration_snippet("tiny", torch.tensor([1e-5, 3e-5]), "x"))["normalizer"]["init_args"]
    assert isinstance(tiny["mean"], float) and tiny["mean"] == 2e-5  # "2.0e-05", not the string "2e-05"
    with pytest.raises(ValueError, match="calibration_snippet\\('flat'\\)"):
        calibration_snippet("flat", torch.ones(4), "x")


def test_command_prints_a_parsable_snippet_per_scorer(capsys, monkeypatch):
    monkeypatch.chdir(__import__("pathlib").Path(__file__).parents[1])
    main([*TINY, "--num_prompts", "8"])
    out = capsys.readouterr().out
    blocks = [block for block in out.split("\n\n") if block.strip()]
    names = [block.splitlines()[0].split(":")[0].lstrip("# ") for block in blocks]
    # the holistic scorer (chrF) and the five aspect candidates of tiny_mt.yaml, in the pipeline's order
    assert names == ["chrf", "spelling", "readability", "language", "length", "grammar"]
    calibrated = [block for block in blocks if "not calibrated" not in block]  # e.g. equal lengths everywhere
    assert calibrated[0] is blocks[0] and len(calibrated) >= 3
    for block in calibrated:
        lines = block.splitlines()
        assert lines[1] == "# python -m alarm_pl.calibrate " + " ".join([*TINY, "--num_prompts", "8"])
        assert lines[2] == "# policy tiny:mt-seq2seq, do_sample=True, top_k=0, top_p=1.0, max_new_tokens=24"
        FixedNormalizer(**yaml.safe_load(block)["normalizer"]["init_args"])
    chrf = yaml.safe_load(blocks[0])["normalizer"]["init_args"]
    assert 0.0 < chrf["mean"] < 100.0 and chrf["std"] > 0  # chrF is on a 0-100 scale
    assert "n=8 values" in blocks[0]  # one holistic value per response


def test_command_help_and_bad_values(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "--num_prompts" in out and "--ckpt_path" in out and "--model.help" in out
    with pytest.raises(SystemExit):
        main(["--config", "configs/tiny_mt.yaml", "--num_prompts", "many"])
