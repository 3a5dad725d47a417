"""Prompt data: JSONL parsing with errors naming file:line, the tiny task, the paper's task splits."""

import json

import pytest

from alarm_pl.data.prompts import DataFormatError, PromptDataModule, TinyMTDataModule, read_jsonl
from alarm_pl.data.tasks import EuroparlMTDataModule, QAFeedbackDataModule, europarl_splits
from alarm_pl.data.tiny_mt import sentence_pairs


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_records_and_batches(tmp_path):
    path = _write(tmp_path / "p.jsonl", [json.dumps({"prompt": "a", "reference": "x", "metadata": {"k": 1}}), "",
                                         json.dumps({"prompt": "b"})])
    records = read_jsonl(path)
    assert [(r.prompt, r.reference, r.metadata) for r in records] == [("a", "x", {"k": 1}), ("b", None, {})]
    dm = PromptDataModule(train_file=str(path), val_file=str(path), batch_size=2)
    batch = next(iter(dm.val_dataloader()))
    assert batch.prompts == ["a", "b"] and batch.references == ["x", None] and batch.indices == [0, 1]


@pytest.mark.parametrize("line, message", [
    ('{"prompt": "ok"', "p.jsonl:2: invalid JSON"),
    ('{"reference": "r"}', "p.jsonl:2: missing or empty string field 'prompt'"),
    ('{"prompt": "a", "reference": 3}', "p.jsonl:2: field 'reference' must be a string"),
    ('{"prompt": "a", "metadata": [1]}', "p.jsonl:2: field 'metadata' must be an object"),
    ('[1, 2]', "p.jsonl:2: expected a JSON object"),
])
def test_malformed_records_name_file_and_line(tmp_path, line, message):
    path = _write(tmp_path / "p.jsonl", [json.dumps({"prompt": "fine"}), line])
    with pytest.raises(DataFormatError, match=message.replace("(", r"\(").replace("[", r"\[")):
        read_jsonl(path)


def test_missing_file_and_unset_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="data.test_file is not set"):
        PromptDataModule(train_file="x").load_split("test")


def test_tiny_task_is_deterministic_and_splits_differ():
    assert sentence_pairs(20, seed=3) == sentence_pairs(20, seed=3)
    dm = TinyMTDataModule(num_train=50, num_val=10, num_test=10, seed=0)
    train, val = dm.load_split("train"), dm.load_split("val")
    assert len(train) == 50 and len(val) == 10
    assert {r.prompt for r in val} - {r.prompt for r in train}  # not the same prompts
    assert all(r.prompt.startswith("translate Spanish to English: ") and r.reference for r in train)
    test = TinyMTDataModule(num_test=600).load_split("test")
    assert len({r.prompt for r in test}) == 600  # distinct: evaluation matches systems by prompt


def test_europarl_split_sizes_and_seed():
    es = [f"es {i}" for i in range(1000)]
    en = [f"en {i}" for i in range(1000)]
    splits = europarl_splits(es, en, num_pairs=1000, seed=42)
    # 1000 → 700 train_all (630 train + 70 val) / 300 test, disjoint and covering everything
    assert [len(splits[s]) for s in ("train", "val", "test")] == [630, 70, 300]
    union = splits["train"] + splits["val"] + splits["test"]
    assert len(set(union)) == 1000 and all(e[3:] == n[3:] for e, n in union)  # pairs stay aligned
    assert europarl_splits(es, en, 1000, 42) == splits
    with pytest.raises(DataFormatError, match="not aligned"):
        europarl_splits(es, en[:-1])


def test_europarl_and_qa_feedback_modules(tmp_path):
    _write(tmp_path / "a.es", [f"Hola {i}." for i in range(50)])
    _write(tmp_path / "a.en", [f"Hello {i}." for i in range(50)])
    dm = EuroparlMTDataModule(str(tmp_path / "a.es"), str(tmp_path / "a.en"), num_pairs=50, max_eval_prompts=3)
    val = dm.load_split("val")
    assert len(val) == 3 and val[0].prompt.startswith("translate Spanish to English: Hola")
    qa = [{"text": "question: q? context: wikipage: W text: t", "question": "q?", "answer": ["A."],
           "passages": [{"wikipage": "W", "content": "c"}]}]
    (tmp_path / "train.json").write_text(json.dumps(qa))
    records = QAFeedbackDataModule(train_file=str(tmp_path / "train.json")).load_split("train")
    assert records[0].prompt == qa[0]["text"] and records[0].reference == "A."
    assert records[0].metadata["passages"][0]["wikipage"] == "W"
    (tmp_path / "bad.json").write_text(json.dumps([{"question": "no text"}]))
    with pytest.raises(DataFormatError, match=r"bad.json\[0\]"):
        QAFeedbackDataModule(train_file=str(tmp_path / "bad.json")).load_split("train")
    with pytest.raises(FileNotFoundError, match="data.init_args.es_file"):
        EuroparlMTDataModule(str(tmp_path / "missing.es"), str(tmp_path / "a.en")).load_split("train")
