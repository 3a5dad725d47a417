"""The sweep's evaluation with the LLM judge: per-seed judgments from a scripted OpenAI-compatible server, then their
aggregation over seeds, checked by hand (the real training runs are in test_ablation_cli.py)."""

from __future__ import annotations

import pytest
from openai_server import OpenAIServer

from alarm_pl.ablation.evaluate import evaluate
from alarm_pl.ablation.plan import plan_runs
from alarm_pl.ablation.runner import Outcome
from alarm_pl.eval.config import JudgeConfig
from alarm_pl.eval.records import GenerationRecord, write_generations

PROMPTS = ["translate Spanish to English: hola", "translate Spanish to English: gracias"]
REFERENCES = ["hello", "thank you"]
# seed -> system -> generation per prompt; the server's rule is "the longer output wins"
GENERATIONS = {
    0: {"hierarchical": ["hello there", "thank you so much"], "holistic_only": ["hello", "thanks"]},
    1: {"hierarchical": ["hello there", "thanks"], "holistic_only": ["hello", "thank you so much"]},
}


def _outcomes(tmp_path):
    outcomes = []
    for run in plan_runs(["hierarchical", "holistic_only"], [0, 1], [], tmp_path, baseline=False):
        path = run.generations_dir / "test-step000020.jsonl"
        records = [
            GenerationRecord(prompt=p, generation=g, reference=r, holistic=float(len(g)), length=len(g.split()))
            for p, r, g in zip(PROMPTS, REFERENCES, GENERATIONS[run.seed][run.system])
        ]
        write_generations(path, records)
        outcomes.append(Outcome(run, "ran", 1.0, 1.0, path))
    return outcomes


def test_judge_win_rates_are_judged_per_seed_and_aggregated_over_seeds(tmp_path, monkeypatch):
    monkeypatch.setenv("ALARM_TEST_JUDGE_KEY", "sk-test")
    outcomes = _outcomes(tmp_path)
    with OpenAIServer(rule="longer", reply="tool") as server:
        judge = JudgeConfig(model="judge-test", base_url=server.url, api_key_env="ALARM_TEST_JUDGE_KEY")
        results = evaluate(outcomes, ["hierarchical", "holistic_only"], [0, 1], tmp_path, judge)
    assert len(server.seen) == 2 * 2 * 2  # 2 seeds x 2 prompts x both orders
    summary = results["judge"]
    assert summary["model"] == "judge-test" and summary["seeds"] == [0, 1] and summary["errors"] == []
    # seed 0: hierarchical longer on both prompts -> 1.0; seed 1: one each -> 0.5
    pair = summary["pairs"]["hierarchical"]["holistic_only"]
    half_width = 12.7062047 * 0.3535534 / 2**0.5  # t(1, 0.975) * sd(1.0, 0.5) / sqrt(2)
    assert pair.mean == pytest.approx(0.75) and pair.sd == pytest.approx(0.3535534)
    assert half_width > 0.75  # 3.18: the interval is clipped to the win rate's range
    assert (pair.low, pair.high) == (0.0, 1.0)
    assert summary["pairs"]["holistic_only"]["hierarchical"].mean == pytest.approx(0.25)
    assert summary["avg"]["hierarchical"].mean == pytest.approx(0.75)
    assert (tmp_path / "compare" / "seed1" / "judge_cache.jsonl").is_file()
