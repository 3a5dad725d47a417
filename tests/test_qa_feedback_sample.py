"""The QA loader on real QA-Feedback records (alarm_pl/assets/qa_feedback/dev_sample.json, 40 dev records)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alarm_pl.data.tasks import QAFeedbackDataModule

SAMPLE = Path(__file__).parents[1] / "alarm_pl" / "assets" / "qa_feedback" / "dev_sample.json"
FULL_DEV = Path("/work/shared/data/qa_feedback/dev.json")


def test_sample_is_the_head_of_the_released_dev_split():
    records = json.loads(SAMPLE.read_text(encoding="utf-8"))
    assert len(records) == 40
    assert all(set(r) == {"text", "question", "answer", "passages"} for r in records)
    if not FULL_DEV.exists():
        pytest.skip(f"{FULL_DEV} (the released split) is not on this machine")
    assert records == json.loads(FULL_DEV.read_text(encoding="utf-8"))[:40]


def test_loader_reads_prompts_references_and_metadata():
    raw = json.loads(SAMPLE.read_text(encoding="utf-8"))
    dm = QAFeedbackDataModule(
        train_file=str(SAMPLE), val_file=str(SAMPLE), test_file=str(SAMPLE), batch_size=4, max_eval_prompts=6
    )
    train, val = dm.load_split("train"), dm.load_split("val")
    assert len(train) == 40 and len(val) == 6  # max_eval_prompts limits validation/test, not training
    for record, item in zip(train, raw):
        assert record.prompt == item["text"]  # the record's text is the policy prompt, unchanged
        assert record.prompt.startswith("question: " + item["question"].strip()[:20])
        assert " context: wikipage: " in record.prompt and " text: " in record.prompt
        assert record.reference == item["answer"][0]
        assert record.metadata["question"] == item["question"]
        assert [p["wikipage"] for p in record.metadata["passages"]] == [p["wikipage"] for p in item["passages"]]
    words = [len(r.prompt.split()) for r in train]
    assert 300 < sum(words) / len(words) < 700  # long prompts (the paper: ~475 words on average over the splits)
    assert any(any(ord(c) > 127 for c in r.prompt) for r in train)  # real text: accents, dashes, quotes
    batch = next(iter(dm.train_dataloader()))
    assert len(batch.prompts) == 4 and all(isinstance(m["passages"], list) for m in batch.metadata)
