"""The generation-file format: round trip, strict JSON, atomic writes, errors naming file:line, config hashes."""

import json
import math

import pytest

from alarm_pl.eval.records import (
    GenerationRecord,
    atomic_writer,
    config_hash,
    read_generations,
    run_identity,
    write_generations,
)


def _records():
    return [
        GenerationRecord(
            prompt="translate Spanish to English: hola",
            generation="hello",
            reference="hello",
            holistic=0.5,
            holistic_raw=-0.871,
            aspects={"grammar": 0.0, "readability": math.nan},
            aspect_higher_is_better={"grammar": False, "readability": True},
            length=2,
            run={"config_hash": "abc", "step": 50, "decoding": {"do_sample": False}},
        ),
        GenerationRecord(
            prompt="question: why?",
            generation='Because {braces} and "quotes"\nnewline.',
            reference=None,
            holistic=-1.25,
            length=9,
        ),
    ]


def test_round_trip_keeps_every_field_and_writes_strict_json(tmp_path):
    path = tmp_path / "gen" / "run.jsonl"  # the directory is created
    write_generations(path, _records())
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2

    def reject(constant):
        raise AssertionError(f"non-strict JSON constant {constant}")

    first = json.loads(lines[0], parse_constant=reject)
    assert first["aspects"] == {"grammar": 0.0, "readability": None}  # NaN is written as null
    back = read_generations(path)
    assert math.isnan(back[0].aspects["readability"])  # and reads back as NaN
    assert back[0].aspects["grammar"] == 0.0 and back[0].aspect_higher_is_better == {
        "grammar": False,
        "readability": True,
    }
    assert back[0].run == {"config_hash": "abc", "step": 50, "decoding": {"do_sample": False}}
    assert back[0].holistic_raw == -0.871 and back[0].reference == "hello"
    assert back[1] == _records()[1]


def test_minimal_record_reads_with_defaults(tmp_path):
    path = tmp_path / "min.jsonl"
    path.write_text('{"prompt": "p", "generation": "g", "holistic": 1, "length": 3}\n\n', encoding="utf-8")
    (record,) = read_generations(path)  # the blank line is skipped
    assert record == GenerationRecord(prompt="p", generation="g", reference=None, holistic=1.0, length=3)


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"prompt": "p", "generation": "g", "holistic": 1, "length": 3', "malformed JSON"),
        ('{"prompt": "p", "generation": "g", "length": 3}', "missing required field(s) ['holistic']"),
        ('{"prompt": "p", "generation": "g", "holistic": "high", "length": 3}', "'holistic' must be a number"),
        ('{"prompt": 7, "generation": "g", "holistic": 1, "length": 3}', "'prompt' must be str"),
        (
            '{"prompt": "p", "generation": "g", "holistic": 1, "length": 3, "aspects": {"grammar": "x"}}',
            "'aspects.grammar' must be a number",
        ),
        (
            '{"prompt": "p", "generation": "g", "holistic": 1, "length": 3, "aspect_higher_is_better": {"g": 1}}',
            "'aspect_higher_is_better.g' must be true or false",
        ),
        ('["p", "g"]', "expected a JSON object"),
    ],
)
def test_bad_line_is_reported_with_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    good = '{"prompt": "q", "generation": "g", "holistic": 0, "length": 1}'
    path.write_text(good + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as err:
        read_generations(path)
    assert f"{path}:2" in str(err.value) and message in str(err.value)


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "run.jsonl"
    write_generations(path, _records()[:1])
    before = path.read_bytes()
    broken = GenerationRecord(prompt="p", generation="g", reference=None, holistic=0.0, length=1, run={"x": object()})
    with pytest.raises(TypeError):
        write_generations(path, [broken])
    with pytest.raises(RuntimeError):
        with atomic_writer(path) as handle:
            handle.write(b"half a file")
            raise RuntimeError("killed mid-way")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.jsonl"]


def test_run_identity_hashes_the_config():
    identity = run_identity({"lr": 1e-3}, "ckpt/last.ckpt", {"do_sample": False}, 50)
    assert identity == {
        "config_hash": config_hash({"lr": 1e-3}),
        "checkpoint": "ckpt/last.ckpt",
        "decoding": {"do_sample": False},
        "step": 50,
    }


def test_config_hash_is_stable_short_and_strict():
    a = config_hash({"lr": 5e-4, "model": {"name": "mt5", "lora": [16, 32]}})
    assert a == config_hash({"model": {"lora": [16, 32], "name": "mt5"}, "lr": 5e-4})  # key order is irrelevant
    assert a != config_hash({"lr": 5e-4, "model": {"name": "mt5", "lora": [16, 64]}})
    assert len(a) == 12 and int(a, 16) >= 0
    with pytest.raises(TypeError, match="not JSON-able"):
        config_hash({"fn": print})
