"""bench/gpu_check.py's CPU-checkable parts: arguments, data, config assembly, summaries, the refusal without CUDA."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from alarm_pl.cli import cli_main

ROOT = Path(__file__).parents[1]
_spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
sys.modules["gpu_check"] = gpu_check
_spec.loader.exec_module(gpu_check)


def test_run_specs():
    assert gpu_check.parse_run("mt:4") == ("mt", 4) and gpu_check.parse_run("qa:8") == ("qa", 8)
    for bad in ("mt", "mt:16", "sum:4", "4:mt"):
        with pytest.raises(ValueError, match="<task>:<bits>"):
            gpu_check.parse_run(bad)


def test_europarl_pairs_are_distinct_aligned_and_bounded(tmp_path):
    pairs = gpu_check.europarl_pairs(200)
    assert len(pairs) == len(set(pairs)) == 200
    es_lines = (gpu_check.FIXTURE / "europarl-v7.es-en.es").read_text().splitlines()
    en_lines = (gpu_check.FIXTURE / "europarl-v7.es-en.en").read_text().splitlines()
    for es, en in pairs[:20]:  # each pair joins sentence i and j in both languages, in the same order
        i = next(k for k, line in enumerate(es_lines) if es.startswith(line + " "))
        assert en.startswith(en_lines[i] + " ") and es[len(es_lines[i]) + 1 :] in es_lines
    with pytest.raises(ValueError, match="at most 1560 distinct pairs"):
        gpu_check.europarl_pairs(1561)
    es_file, en_file = gpu_check.write_europarl(tmp_path, rollouts=3)
    lines = es_file.read_text().splitlines()
    assert len(lines) == len(en_file.read_text().splitlines()) == int(32 * 3 / 0.63) + 64  # ≥ 3 batches of 32


@pytest.mark.parametrize("task,bits", [("mt", 4), ("mt", 8), ("qa", 4)])
def test_assembled_arguments_build_the_full_size_run(task, bits, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    files = gpu_check.write_europarl(tmp_path / "data", 2) if task == "mt" else None
    args = gpu_check.fit_args(task, bits, 2, tmp_path, files)
    # instantiated on the CPU (accelerator and precision swapped), nothing loaded: the models load in setup()
    cli = cli_main(args + ["--trainer.accelerator", "cpu", "--trainer.precision", "32-true"], run=False)
    policy, holistic = cli.model.policy.config, cli.model.scoring.holistic_scorer
    assert policy.model_name_or_path == {"mt": "dummy:mt5-base", "qa": "dummy:t5-large"}[task]
    assert policy.dummy_overrides is None and policy.dtype == "bfloat16" and policy.lora_r == 16  # full size, LoRA
    assert holistic.model_name_or_path == "dummy:ultrarm-13b" and holistic.dummy_overrides is None
    assert holistic.quantization_bits == bits and not holistic.allow_cpu_quantization
    assert holistic.key_mapping == {"^regression_head": "score"}
    assert cli.datamodule.batch_size == {"mt": 32, "qa": 8}[task] and cli.trainer.max_steps == 2
    assert type(cli.trainer.logger).__name__ == "CSVLogger"
    names = [a.name for a in cli.model.scoring.aspect_scorers]
    if task == "mt":
        assert names == ["grammar", "readability", "language"]
        assert cli.model.scoring.aspect_scorers[0].backend == "harper"
    else:
        assert names == ["factuality", "relevance", "completeness"]
        assert all(a.model_name_or_path.startswith("dummy:fgrlhf-") for a in cli.model.scoring.aspect_scorers)
    with pytest.raises(ValueError, match="needs the Europarl-format files"):
        gpu_check.fit_args("mt", 4, 2, tmp_path)


def test_phase_summary_and_table():
    rows = [
        {
            "train/time/generate": "2.0",
            "train/time/reference": "1.0",
            "train/time/score": "0.5",
            "train/time/update": "4.5",
            "train/response_length": "100",
        },
        {"val/holistic": "0.1"},  # not a rollout
        {
            "train/time/generate": "4.0",
            "train/time/reference": "1.0",
            "train/time/score": "1.5",
            "train/time/update": "5.5",
            "train/response_length": "50",
        },
    ]
    summary = gpu_check.phase_summary(rows, batch=8)
    # means: generate 3, reference 1, score 1, update 5 → 10 s per rollout; tokens (100 + 50) × 8 = 1200 in 6 s
    assert summary["phase_s"] == {"generate": 3.0, "reference": 1.0, "score": 1.0, "update": 5.0}
    assert summary["rollout_s"] == 10.0 and summary["generated_tokens_per_s"] == 200.0
    assert summary["episodes_per_s"] == 0.8 and summary["rollouts"] == 2
    # 600 response tokens per rollout: 600/3, 600/1, 600/1, 600/5 tokens/s; shares 3/10, 1/10, 1/10, 5/10
    assert summary["phase_tokens_per_s"] == pytest.approx(
        {"generate": 200, "reference": 600, "score": 600, "update": 120}
    )
    assert summary["phase_share"] == pytest.approx({"generate": 0.3, "reference": 0.1, "score": 0.1, "update": 0.5})
    with pytest.raises(ValueError, match="no logged rollout"):
        gpu_check.phase_summary([{"val/holistic": "1"}], 8)
    table = gpu_check.markdown_table(
        [
            {
                "task": "mt",
                "bits": 4,
                "batch": 32,
                "device": "GPU X",
                "load_s": 61.2,
                **summary,
                "peak_allocated_gib": 17.04,
                "peak_reserved_gib": 19.5,
            }
        ]
    )
    assert "| mt 4-bit, batch 32 | GPU X | 61 | 3.00 | 1.00 | 1.00 | 5.00 | 200 | 0.80 | 17.0 | 19.5 |" in table
    assert "| mt 4-bit | 200 (30 %) | 600 (10 %) | 600 (10 %) | 120 (50 %) |" in table


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_refuses_to_run_without_cuda_but_plans(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(["run", "--run", "mt:4", "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "no CUDA device" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing was run or written
    gpu_check.main(["plan", "--out", str(tmp_path)])
    commands = capsys.readouterr().out.splitlines()
    assert len(commands) == 3 and all(c.startswith("python -m alarm_pl fit --config ") for c in commands)
    assert "--model.holistic.init_args.quantization_bits 8" in commands[1]
