"""``python -m alarm_pl.eval compare`` end to end on three small generation files: report, results, plots, the judge
against the local test server, the API key kept out of every file, and a killed run resumed."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import sacrebleu
from openai_server import OpenAIServer

from alarm_pl.eval.cli import main
from alarm_pl.eval.records import GenerationRecord, write_generations

SECRET = "sk-test-5ecret-DO-NOT-LEAK-0123456789"
PROMPTS = [
    "translate Spanish to English: hola",
    "translate Spanish to English: gracias",
    "translate Spanish to English: buenos dias",
]
REFERENCES = ["hello", "thank you", "good morning"]
# system -> per prompt (generation, holistic, grammar error rate); grammar is an error rate (lower is better)
SYSTEMS = {
    "ppo_holistic": [("hello", 1.0, 0.0), ("thanks a lot", 0.5, 0.1), ("good day", 0.2, 0.3)],
    "ppo_alarm": [("hello there", 2.0, 0.0), ("thank you", 0.1, 0.0), ("good morning", 0.9, 0.2)],
    "sft": [("hi", 0.0, 0.5), ("thank", 0.5, 0.4), ("morning good", -1.0, 0.1)],
}


def _write_runs(directory):
    paths = []
    for name, rows in SYSTEMS.items():
        records = [
            GenerationRecord(
                prompt=p,
                generation=g,
                reference=r,
                holistic=h,
                aspects={"grammar": e},
                aspect_higher_is_better={"grammar": False},
                length=len(g.split()),
                run={"config_hash": name, "step": 50},
            )
            for p, r, (g, h, e) in zip(PROMPTS, REFERENCES, rows)
        ]
        paths.append(directory / f"{name}.jsonl")
        write_generations(paths[-1], records)
    return [str(p) for p in paths]


def test_compare_reward_tables_consistency_mt_and_plots(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    out = tmp_path / "out"
    assert main(["compare", *_write_runs(tmp_path), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "consistency.png",
        "report.md",
        "results.json",
        "winrate_grammar.png",
        "winrate_holistic.png",
    ]
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in out.glob("*.png"))
    results = json.loads((out / "results.json").read_text())
    assert results["judge"] is None and results["systems"] == list(SYSTEMS) and results["prompts"] == 3
    holistic = results["win_rates"]["holistic"]["pairs"]
    # ppo_alarm vs ppo_holistic on H: 2.0>1.0 win, 0.1<0.5 loss, 0.9>0.2 win -> 2/3
    assert holistic["ppo_alarm"]["ppo_holistic"] == {"win": 2, "lose": 1, "tie": 0, "win_rate": pytest.approx(2 / 3)}
    # ppo_holistic vs sft on H: 1.0>0.0 win, 0.5=0.5 tie, 0.2>-1.0 win -> 2/2
    assert holistic["ppo_holistic"]["sft"] == {"win": 2, "lose": 0, "tie": 1, "win_rate": 1.0}
    # grammar error rate, lower wins: ppo_alarm vs sft: 0<0.5, 0<0.4, 0.2>0.1 -> 2 wins 1 loss; vs ppo_holistic:
    # 0=0 tie, 0<0.1 win, 0.2<0.3 win -> 2/2; Avg. = (1 + 2/3) / 2
    grammar = results["win_rates"]["grammar"]
    assert grammar["higher_is_better"] is False
    assert grammar["avg"]["ppo_alarm"] == pytest.approx((1 + 2 / 3) / 2)
    # consistency of grammar with H, signs (dH, -d error) per prompt, over the 3 pairs:
    # ppo_holistic-ppo_alarm: (-, 0), (+, -) inconsistent, (-, -)      -> 3 decisive, 1 inconsistent
    # ppo_holistic-sft:       (+, +), (0: skipped), (+, -) inconsistent -> 2 decisive, 1 inconsistent
    # ppo_alarm-sft:          (+, +), (-, +) inconsistent, (+, -) inconsistent -> 3 decisive, 2 inconsistent
    assert results["consistency"]["grammar"] == {
        "higher_is_better": False,
        "inconsistent": 4,
        "decisive": 8,
        "inconsistency": 0.5,
    }
    alarm_outputs = [g for g, _, _ in SYSTEMS["ppo_alarm"]]  # corpus scores against the files' references
    assert results["mt"]["ppo_alarm"] == {
        "bleu": sacrebleu.corpus_bleu(alarm_outputs, [REFERENCES]).score,
        "chrf": sacrebleu.corpus_chrf(alarm_outputs, [REFERENCES]).score,
        "n": 3,
    }
    assert results["mt"]["ppo_alarm"]["chrf"] > results["mt"]["sft"]["chrf"] > 0
    report = (out / "report.md").read_text()
    # holistic: ppo_holistic vs ppo_alarm 1/3, vs sft 2/2 -> Avg. 66.67; ppo_alarm 2/3 and 2/3 -> 66.67 (both best)
    assert "## Win rate by holistic (higher is better) (%)" in report
    assert "| system | vs ppo_holistic | vs ppo_alarm | vs sft | Avg. |" in report
    assert "| ppo_holistic | – | 33.33 | 100.00 | **66.67** |" in report
    assert "| ppo_alarm | 66.67 | – | 66.67 | **66.67** |" in report
    assert "## Win rate by grammar (lower is better) (%)" in report
    assert (
        "| grammar | lower is better | 4 | 8 | 50.00 |" in report
        and "| system | holistic | grammar | length | BLEU | chrF |" in report
    )
    assert "no --judge.model given" in caplog.text
    # the report links every plot it sits beside, and says why the judge's table is missing
    linked = {line[line.index("(") + 1 : -1] for line in report.splitlines() if line.startswith("![")}
    assert linked == {p.name for p in out.glob("*.png")}
    assert "## Win rate by LLM judge\n\nSkipped: no `--judge.model` was given." in report
    assert f"| `ppo_alarm` | `{tmp_path / 'ppo_alarm.jsonl'}` |" in report


def test_systems_are_named_by_their_run_or_explicitly(tmp_path):
    from alarm_pl.eval.cli import name_systems

    runs = []
    for run in ("test-version_0-step000100", "test-version_1-step000100"):  # two runs' test files: the same name
        (tmp_path / run / "generations").mkdir(parents=True)
        runs.append(tmp_path / run / "generations" / "test-step000100.jsonl")
        runs[-1].write_text("")
    assert [n for n, _ in name_systems([str(r) for r in runs])] == [
        "test-version_0-step000100/test-step000100",
        "test-version_1-step000100/test-step000100",
    ]
    single = tmp_path / "sft.jsonl"
    single.write_text("")
    named = name_systems([f"alarm={runs[0]}", str(single), str(runs[1])])
    assert named == [("alarm", runs[0]), ("sft", single), ("test-step000100", runs[1])]  # no clash left: the stem
    with pytest.raises(ValueError, match="two systems are named 'x'"):
        name_systems([f"x={runs[0]}", f"x={runs[1]}"])
    copied = _write_runs(tmp_path)  # end to end: explicit names reach the results
    out = tmp_path / "out"
    assert main(["compare", f"A={copied[0]}", f"B={copied[1]}", "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text())["systems"] == ["A", "B"]


def test_consistency_chart_has_a_legend():
    from alarm_pl.eval.plots import consistency_figure

    figure = consistency_figure(
        {"grammar": {"inconsistency": 0.2}, "spelling": {"inconsistency": 0.4}, "length": {"inconsistency": 0.1}}
    )
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == [
        "most consistent aspect (would be selected)",
        "other aspects",
        "length (reference, never selected)",
    ]
    from matplotlib.colors import to_rgba

    bars = figure.axes[0].patches  # lowest first: length (10 %, hatched, never selected), grammar, spelling
    assert [bool(bar.get_hatch()) for bar in bars] == [True, False, False]
    assert [bar.get_facecolor() for bar in bars] == [to_rgba("tab:gray"), to_rgba("tab:green"), to_rgba("tab:gray")]


def test_compare_with_judge_keeps_the_key_out_of_every_file(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("ALARM_TEST_JUDGE_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    with OpenAIServer(rule="longer", reply="tool") as server:
        code = main(
            [
                "compare",
                *_write_runs(tmp_path),
                "--out",
                str(out),
                "--judge.model",
                "judge-test",
                "--judge.base_url",
                server.url,
                "--judge.api_key_env",
                "ALARM_TEST_JUDGE_KEY",
                "--judge.concurrency",
                "2",
                "--judge.cost_per_1k_input",
                "1.0",
            ]
        )
    assert code == 0
    assert {s.authorization for s in server.seen} == {f"Bearer {SECRET}"}  # the key was used ...
    assert {"judge_cache.jsonl", "winrate_judge.png"} <= {p.name for p in out.iterdir()}
    for path in out.iterdir():  # ... and appears in no file written, nor in the log
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in caplog.text
    judge = json.loads((out / "results.json").read_text())["judge"]
    assert judge["settings"]["api_key_env"] == "ALARM_TEST_JUDGE_KEY" and judge["prompts"] == 3
    # longer output wins both orders: ppo_alarm is longer than sft on p1 and p2; p3 has equal lengths, the server
    # then picks "a" in both orders -> a position tie
    assert judge["pairs"]["ppo_alarm"]["sft"] == {"win": 2, "lose": 0, "tie": 1, "win_rate": 1.0}
    assert judge["tie_reasons"]["ppo_alarm"]["sft"]["position"] == 1
    assert judge["usage"]["requests"] == len(server.seen) == 18  # 3 pairs x 3 prompts x 2 orders
    assert judge["usage"]["cost_usd_this_run"] == pytest.approx(18 * 100 / 1000 * 1.0)  # 1800 input tokens at $1/1k
    report = (out / "report.md").read_text()
    assert "## Win rate by LLM judge `judge-test` (%)" in report and "| ppo_alarm vs sft | 1 | 0 | 0 | 0 |" in report


def test_bad_input_file_is_named_with_its_line(tmp_path, caplog):
    runs = _write_runs(tmp_path)
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"prompt": "p", "generation": "g", "holistic": 1, "length": 1}\n{"prompt": "q"}\n')
    assert main(["compare", runs[0], str(bad), "--out", str(tmp_path / "out")]) == 2
    assert f"{bad}:2: missing required field(s)" in caplog.text
    assert main(["compare", runs[0], runs[0], "--out", str(tmp_path / "out")]) == 2
    assert f"the generation file {tmp_path / 'ppo_holistic.jsonl'} is given twice" in caplog.text


def test_judge_rejected_key_is_reported_and_reward_tables_still_written(tmp_path):
    out = tmp_path / "out"
    with OpenAIServer(always={"status": 401}) as server:
        code = main(
            ["compare", *_write_runs(tmp_path), "--out", str(out), "--judge.model", "m", "--judge.base_url", server.url]
        )
    assert code == 1
    results = json.loads((out / "results.json").read_text())
    assert "answered 401" in results["judge"]["error"] and "holistic" in results["win_rates"]
    assert "The judge failed" in (out / "report.md").read_text()


def test_killed_run_resumes_without_losing_or_repeating_a_judgment(tmp_path):
    runs = _write_runs(tmp_path)
    out = tmp_path / "out"
    cache = out / "judge_cache.jsonl"
    args = ["compare", *runs, "--out", str(out), "--judge.model", "judge-test", "--judge.concurrency", "1"]
    with OpenAIServer(rule="longer", hang_after=5) as server:
        command = [sys.executable, "-m", "alarm_pl.eval", *args, "--judge.base_url", server.url]
        process = subprocess.Popen(
            command, env={**os.environ, "OPENAI_API_KEY": SECRET}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while len(server.seen) < 6 and time.monotonic() < deadline:  # 5 answered, the 6th hangs
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert len(server.answered) == 5 and len(cache.read_text().splitlines()) == 5
        server.hang_after = None
        server.release()
        assert main([*args, "--judge.base_url", server.url]) == 0
    answered = Counter((s.output_a, s.output_b) for s in server.answered)
    assert len(answered) == 18 and set(answered.values()) == {1}  # every request answered exactly once
    results = json.loads((out / "results.json").read_text())
    assert results["judge"]["usage"]["cached_replies"] == 5 and results["judge"]["usage"]["new_replies"] == 13


def test_judge_options_are_typed_and_validated(tmp_path, caplog):
    from alarm_pl.eval.cli import build_parser, judge_config

    args = build_parser().parse_args(
        [
            "compare",
            "a.jsonl",
            "b.jsonl",
            "--out",
            "o",
            "--judge.max_tokens",
            "null",
            "--judge.rpm",
            "90",
            "--judge.subset",
            "3000",
            "--judge.tool",
            "off",
        ]
    )
    config = judge_config(args)
    assert (config.max_tokens, config.rpm, config.subset, config.tool) == (None, 90.0, 3000, "off")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["compare", "a.jsonl", "--out", "o", "--judge.tool", "sometimes"])
    runs = _write_runs(tmp_path)
    assert main(["compare", *runs, "--out", str(tmp_path / "o"), "--judge.concurrency", "0"]) == 2
    assert "--judge.concurrency: invalid value 0" in caplog.text
