"""Bad input, before any compute is spent: each row of the README table "Bad input: what you give → what you get".

Every case goes through a real entry point (``python -m alarm_pl``'s ``main``, ``python -m alarm_pl.eval compare``'s
``main``, ``python -m alarm_pl.calibrate``'s ``main``) and checks the exit status and that the message names the
culprit: ``file:line`` for data, the config key (and the allowed values) for configuration, the path for files, the
URL for servers. Nothing here trains or generates: each command stops while reading its input (a few seconds at most,
the tiny policy's load for the cases that need a module)."""

import json
import logging
import re
import socket
from pathlib import Path

import pytest
import yaml

from alarm_pl import calibrate
from alarm_pl.cli import main
from alarm_pl.eval import cli as eval_cli
from alarm_pl.eval.records import GenerationRecord, write_generations

CONFIGS = Path(__file__).parents[1] / "configs"
GOOD = {"prompt": "translate Spanish to English: hola", "reference": "hello"}


@pytest.fixture(autouse=True)
def _command_line_of_its_own(monkeypatch):
    monkeypatch.setattr("sys.argv", ["alarm_pl"])  # LightningCLI warns when pytest's arguments are there too


def _lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path) -> Path:
    """configs/tiny_mt.yaml on JSONL prompt files (good ones for every split), writing under ``tmp_path`` only."""
    settings = yaml.safe_load((CONFIGS / "tiny_mt.yaml").read_text())
    settings["trainer"].update(logger=False, enable_checkpointing=False, default_root_dir=str(tmp_path / "run"))
    good = str(_lines(tmp_path / "good.jsonl", json.dumps(GOOD), json.dumps({**GOOD, "prompt": "hola amigo"})))
    files = {"train_file": good, "val_file": good, "test_file": good, "batch_size": 2}
    settings["data"] = {"class_path": "alarm_pl.data.prompts.PromptDataModule", "init_args": files}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def _fails(args: list[str], capsys, monkeypatch, status: int = 1) -> str:
    """Run ``python -m alarm_pl ARGS`` in-process; assert the exit status and no traceback; return stderr."""
    monkeypatch.setattr("sys.argv", ["alarm_pl", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == status
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Given value" not in err  # one message, no dump of the configuration
    return err


# --- data records: file:line ---------------------------------------------------------------------------------------

RECORDS = [
    ('{"prompt": "ok"', r":2: invalid JSON \(Expecting ',' delimiter at column 16\)"),
    ('{"reference": "r"}', ":2: missing or empty string field 'prompt'"),
    ('{"prompt": "   "}', ":2: missing or empty string field 'prompt'"),
    ('{"prompt": "a", "reference": 3}', ":2: field 'reference' must be a string or null, got int"),
    ('{"prompt": "a", "metadata": [1]}', ":2: field 'metadata' must be an object, got list"),
    ('["a", "b"]', ":2: expected a JSON object, got list"),
]
SPLITS = [("fit", "train_file"), ("validate", "val_file"), ("test", "test_file")]


@pytest.mark.parametrize("line, message", RECORDS)
def test_a_malformed_record_is_named_by_file_and_line(line, message, config, tmp_path, capsys, monkeypatch):
    bad = _lines(tmp_path / "bad.jsonl", json.dumps(GOOD), line)
    err = _fails(["fit", "--config", str(config), "--data.train_file", str(bad)], capsys, monkeypatch)
    assert "DataFormatError" in err and _names(bad, message, err) and f"error: {bad}:2: " in err
    assert "Loading weights" not in err  # read in the data module's setup, before the policy is loaded


@pytest.mark.parametrize("command, key", SPLITS[1:])
def test_validate_and_test_read_their_split_first(command, key, config, tmp_path, capsys, monkeypatch):
    bad = _lines(tmp_path / "bad.jsonl", json.dumps(GOOD), json.dumps(GOOD), '{"prompt": 1}')
    err = _fails([command, "--config", str(config), f"--data.{key}", str(bad)], capsys, monkeypatch)
    assert f"error: {bad}:3: missing or empty string field 'prompt'" in err and "Loading weights" not in err


@pytest.mark.parametrize("command, key", SPLITS)
def test_an_empty_or_missing_data_file_is_named(command, key, config, tmp_path, capsys, monkeypatch):
    empty = _lines(tmp_path / "empty.jsonl", "", "  ")
    err = _fails([command, "--config", str(config), f"--data.{key}", str(empty)], capsys, monkeypatch)
    assert f"error: {empty}: no records" in err
    missing = tmp_path / "missing.jsonl"
    err = _fails([command, "--config", str(config), f"--data.{key}", str(missing)], capsys, monkeypatch)
    assert f"error: prompt file not found: {missing}" in err


def _names(path: Path, message: str, text: str) -> bool:
    """Whether ``text`` holds ``path`` followed by the regular expression ``message``."""
    return re.search(re.escape(str(path)) + message, text) is not None


# --- configuration: the key and its allowed values -----------------------------------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        (["--model.ppo.clip_ragne", "0.3"], "model.ppo.clip_ragne: no such option of alarm_pl.module.ALaRMModule; "),
        (["--trainer.max_step", "5"], "trainer.max_step: no such option; did you mean trainer.max_steps?"),
        (["--model.reward.threshold", "high"], "model.reward.threshold: Expected a <class 'float'>. Got value: high"),
        (
            ["--model.reward.strategy", "best"],
            "model.reward.strategy: Expected a typing.Literal['holistic_only', 'aspect_only', 'weighted_sum', "
            "'hierarchical']. Got value: best",
        ),
        (["--model.selection.mode", "sometimes"], "model.selection.mode: Expected a typing.Literal['fixed', 'auto', "),
        (["--data.batch_size", "two"], "data.batch_size: Expected a <class 'int'>. Got value: two"),
    ],
)
def test_an_unknown_key_or_a_value_of_the_wrong_type_is_refused_while_parsing(
    override, message, config, capsys, monkeypatch
):
    err = _fails(["fit", "--config", str(config), *override], capsys, monkeypatch, status=2)
    assert message in err.strip().splitlines()[-1]


def test_a_misspelled_key_in_a_config_file_is_named_with_the_closest_real_one(config, capsys, monkeypatch):
    settings = yaml.safe_load(config.read_text())
    reward = settings["model"]["init_args"]["reward"]
    reward["treshold"] = reward.pop("threshold")
    config.write_text(yaml.safe_dump(settings))
    err = _fails(["fit", "--config", str(config)], capsys, monkeypatch, status=2)
    assert "model.reward.treshold: no such option" in err and "did you mean model.reward.threshold?" in err


@pytest.mark.parametrize(
    "override, message",
    [
        (["--model.generation.max_new_tokens", "0"], "model.generation: need 1 <= max_new_tokens and min_new_tokens"),
        (["--model.max_prompt_length", "0"], "model.max_prompt_length must be >= 1 or null (no truncation), got 0"),
        (["--data.batch_size", "0"], "data.batch_size must be >= 1, got 0"),
        (["--data.eval_batch_size", "-4"], "data.eval_batch_size must be >= 1, got -4"),
        (["--data.max_train_prompts", "0"], "data.max_train_prompts must be >= 1, got 0"),
        (["--model.ppo.ppo_epochs", "0"], "model.ppo: ppo_epochs, num_minibatches and gradient_accumulation_steps"),
        (["--model.selection.top_k", "0"], "model.selection.top_k must be >= 1 or null, got 0"),
        (["--model.policy.lora_r", "-1"], "model.policy.lora_r must be >= 0, got -1"),
        (
            ["--model.holistic.init_args.normalizer.init_args.std", "0"],
            "FixedNormalizer: need finite mean, scale, bias and std > 0, got mean=70.96, std=0.0",
        ),
        (
            ["--model.holistic.init_args.normalizer.init_args.std", "-2.5"],
            "FixedNormalizer: need finite mean, scale, bias and std > 0, got mean=70.96, std=-2.5",
        ),
    ],
)
def test_an_impossible_value_is_named_by_its_key(override, message, config, capsys, monkeypatch):
    err = _fails(["fit", "--config", str(config), *override], capsys, monkeypatch)
    assert f"error: {message}" in err
    assert "Loading weights" not in err  # refused while the classes are built


def test_calibration_refuses_too_few_prompts(config, capsys):
    with pytest.raises(
        SystemExit, match=r"--num_prompts must be >= 2 \(a standard deviation needs two values\), got 1"
    ):
        calibrate.main(["--config", str(config), "--num_prompts", "1"])


# --- files: the path -----------------------------------------------------------------------------------------------


def test_a_missing_or_unparsable_config_file_is_named(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "nope.yaml"
    err = _fails(["fit", "--config", str(missing)], capsys, monkeypatch, status=2)
    assert f"File does not exist: '{missing}'" in err.strip().splitlines()[-1]
    broken = _lines(tmp_path / "broken.yaml", "model:", "  init_args: {policy: [unclosed", "data: 1")
    err = _fails(["fit", "--config", str(broken)], capsys, monkeypatch, status=2)
    assert err.strip().splitlines()[-1] == (
        f"error: --config {broken}:3:5: not valid YAML (expected ',' or ']', but got ':')"
    )


@pytest.mark.parametrize("command", ["fit", "validate", "test"])
def test_a_missing_model_directory_is_named_by_key_and_path(command, config, tmp_path, capsys, monkeypatch):
    nowhere = tmp_path / "no-model"
    err = _fails(
        [command, "--config", str(config), "--model.policy.model_name_or_path", str(nowhere)], capsys, monkeypatch
    )
    assert f"error: model.policy.model_name_or_path: local path '{nowhere}'" in err and "does not exist" in err


def test_a_model_directory_without_a_model_is_named(config, tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    err = _fails(["fit", "--config", str(config), "--model.policy.model_name_or_path", str(empty)], capsys, monkeypatch)
    assert f"error: model.policy.model_name_or_path: local directory '{empty}' ({empty}) has no config.json" in err


@pytest.mark.parametrize("command", ["fit", "validate", "test"])
def test_a_missing_checkpoint_is_named(command, config, tmp_path, capsys, monkeypatch):
    missing = tmp_path / "nothere.ckpt"
    err = _fails([command, "--config", str(config), "--ckpt_path", str(missing)], capsys, monkeypatch)
    assert f"error: {command} --ckpt_path {missing}: no such file" in err


def test_a_corrupt_checkpoint_is_named(config, tmp_path, capsys, monkeypatch):
    corrupt = tmp_path / "last.ckpt"
    corrupt.write_bytes(b"step,reward\n1,0.5\n")  # other foreign and truncated files: tests/test_checkpoint_io.py
    err = _fails(["validate", "--config", str(config), "--ckpt_path", str(corrupt)], capsys, monkeypatch)
    assert "CheckpointError" in err and str(corrupt) in err and "truncated, corrupt or not a torch file" in err


def test_calibration_names_a_missing_or_corrupt_checkpoint(config, tmp_path):
    from alarm_pl.checkpointing.io import CheckpointError

    missing = tmp_path / "nothere.ckpt"
    with pytest.raises(CheckpointError, match=f"checkpoint not found: {missing}"):
        calibrate.main(["--config", str(config), "--ckpt_path", str(missing)])
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="truncated, corrupt or not a torch file") as caught:
        calibrate.main(["--config", str(config), "--ckpt_path", str(corrupt)])
    assert str(corrupt) in str(caught.value)


# --- servers: the URL ----------------------------------------------------------------------------------------------


def _closed_port() -> int:
    """A localhost port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_dead_grammar_server_is_named_by_its_url(config, capsys, monkeypatch):
    url = f"http://127.0.0.1:{_closed_port()}/v2"
    settings = yaml.safe_load(config.read_text())
    grammar = {"backend": "http", "url": url, "retries": 1, "backoff": 0.01, "timeout": 2.0}
    settings["model"]["init_args"]["aspects"] = [
        {"class_path": "alarm_pl.rewards.aspects.grammar.GrammarScorer", "init_args": grammar}
    ]
    settings["model"]["init_args"]["selection"] = {"mode": "fixed", "aspects": ["grammar"]}
    config.write_text(yaml.safe_dump(settings))
    err = _fails(["fit", "--config", str(config)], capsys, monkeypatch)
    assert f"error: scorer 'grammar': LanguageTool request to {url}/languages failed after 2 attempt(s)" in err


def _generations(path: Path, prompts: list[str]) -> str:
    """A generation file of ``prompts``, each answered differently by each file (a judge skips identical outputs)."""
    records = [
        GenerationRecord(prompt=p, generation=f"{path.stem} {i}", holistic=float(i), length=2)
        for i, p in enumerate(prompts)
    ]
    write_generations(path, records)
    return str(path)


def test_a_dead_judge_endpoint_is_named_by_its_url(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    runs = [_generations(tmp_path / f"{name}.jsonl", ["p1", "p2"]) for name in ("a", "b")]
    judge = ["--judge.model", "m", "--judge.base_url", url, "--judge.api_key_env", "JUDGE_KEY"]
    judge += ["--judge.max_retries", "0", "--judge.timeout", "2"]
    with caplog.at_level(logging.ERROR, logger="alarm_pl.eval"):
        status = eval_cli.main(["compare", *runs, "--out", str(tmp_path / "out"), *judge])
    assert status == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"judge endpoint {url}" in e and "could not be reached: all 4 request(s) failed" in e for e in errors)


# --- eval compare: generation files --------------------------------------------------------------------------------


def _compare_fails(runs: list[str], tmp_path, caplog) -> str:
    with caplog.at_level(logging.ERROR, logger="alarm_pl.eval"):
        assert eval_cli.main(["compare", *runs, "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out" / "report.md").exists()
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)


def test_compare_names_a_missing_generation_file(tmp_path, caplog):
    missing = tmp_path / "b.jsonl"
    assert f"generation file not found: {missing}" in _compare_fails(
        [_generations(tmp_path / "a.jsonl", ["p1"]), str(missing)], tmp_path, caplog
    )


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", r":2: malformed JSON \(Expecting property name enclosed in double quotes at column 2\)"),
        (json.dumps({"generation": "x"}), ":2: .*'prompt'"),
        (json.dumps({"prompt": "p2", "generation": 7}), ":2: .*'generation'"),
        ("[1]", ":2: expected a JSON object, got list"),
    ],
)
def test_compare_names_a_corrupt_generation_file_by_file_and_line(line, message, tmp_path, caplog):
    good = _generations(tmp_path / "a.jsonl", ["p1", "p2"])
    corrupt = tmp_path / "b.jsonl"
    corrupt.write_text(Path(good).read_text().splitlines()[0] + "\n" + line + "\n")
    assert _names(corrupt, message, _compare_fails([good, str(corrupt)], tmp_path, caplog))


def test_compare_refuses_files_of_different_prompts(tmp_path, caplog):
    a = _generations(tmp_path / "a.jsonl", ["p1", "p2"])
    other = _generations(tmp_path / "b.jsonl", ["q1", "q2"])
    assert "share no prompt; are these generation files for the same data?" in _compare_fails(
        [a, other], tmp_path, caplog
    )
    empty = _lines(tmp_path / "c.jsonl", "")
    assert "share no prompt" in _compare_fails([a, str(empty)], tmp_path, caplog)
    repeated = _generations(tmp_path / "d.jsonl", ["p1", "p1"])
    assert "system 'd': record 2 repeats the prompt 'p1'" in _compare_fails([a, repeated], tmp_path, caplog)


def test_compare_of_partly_different_prompts_warns_and_compares_the_shared_ones(tmp_path, caplog):
    a = _generations(tmp_path / "a.jsonl", ["p1", "p2", "p3"])
    b = _generations(tmp_path / "b.jsonl", ["p1", "p2"])
    with caplog.at_level(logging.WARNING, logger="alarm_pl.eval"):
        assert eval_cli.main(["compare", a, b, "--out", str(tmp_path / "out")]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "system 'b' lacks 1 prompt(s) that other systems have; they are left out" in warnings
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["prompts"] == 2
