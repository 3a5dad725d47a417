"""Preference data: the JSONL reader's errors (file:line), the DataModule's batches, and the tiny testbed's generator
(corruptions, gold score, pairs, label noise, disjoint prompt splits)."""

from __future__ import annotations

import json
import random

import pytest

from alarm_pl.data.preferences import PreferenceDataModule, read_preferences
from alarm_pl.data.prompts import DataFormatError, TinyMTDataModule
from alarm_pl.data.tiny_corruptions import EDITS, corrupt
from alarm_pl.data.tiny_preferences import (
    Candidate,
    TinyPreferenceDataModule,
    TinyPreferenceSpec,
    draw_pairs,
    gold_score,
)


def _write(path, lines):
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


GOOD = {"prompt": "p", "chosen": "a good answer", "rejected": "bad", "note": 3}


@pytest.mark.parametrize(
    "line,message",
    [
        ("{not json", r"prefs.jsonl:2: invalid JSON"),
        ({"prompt": "p", "chosen": "a"}, r"prefs.jsonl:2: field 'rejected' must be a string, got nothing"),
        ({"prompt": "p", "chosen": 3, "rejected": "b"}, r"prefs.jsonl:2: field 'chosen' must be a string, got int"),
        ({"prompt": "p", "chosen": "same", "rejected": "same"}, r"prefs.jsonl:2: .*same text"),
        ({"prompt": "p", "chosen": " ", "rejected": "b"}, r"prefs.jsonl:2: .*non-empty"),
        ([1, 2], r"prefs.jsonl:2: expected a JSON object"),
    ],
)
def test_reader_errors_name_file_and_line(tmp_path, line, message):
    path = _write(tmp_path / "prefs.jsonl", [GOOD, line])
    with pytest.raises(DataFormatError, match=message):
        read_preferences(path)


def test_reader_keeps_other_fields_and_the_data_module_batches_texts(tmp_path):
    path = _write(tmp_path / "prefs.jsonl", [GOOD, "", {**GOOD, "chosen": "another"}, {**GOOD, "chosen": "third"}])
    pairs = read_preferences(path)
    assert len(pairs) == 3 and pairs[0].metadata == {"note": 3} and pairs[1].source.endswith("prefs.jsonl:3")
    data = PreferenceDataModule(train_file=str(path), val_file=str(path), batch_size=2, max_eval_pairs=1)
    batch = next(iter(data.val_dataloader()))
    assert batch.prompts == ["p"] and batch.chosen == ["a good answer"] and batch.rejected == ["bad"]
    assert [len(b) for b in data.train_dataloader()] == [2, 1]
    with pytest.raises(ValueError, match="data.init_args.test_file is not set"):
        data.pairs("test")
    with pytest.raises(DataFormatError, match="no preference pairs"):
        read_preferences(_write(tmp_path / "empty.jsonl", [""]))


def test_corruptions_change_the_reference_and_keep_its_end():
    rng = random.Random(0)
    reference, source = "The dog eats an apple today.", "El perro come una manzana hoy."
    outputs = [corrupt(reference, source, rng) for _ in range(200)]
    assert all(out != reference for out in outputs)
    assert any(out.endswith(".") for out in outputs) and any(not out.endswith(".") for out in outputs)  # truncate
    assert any(w in out.split() for out in outputs for w in ("el", "perro", "come", "una", "manzana", "hoy"))
    assert any("a apple" in out or "A apple" in out for out in outputs)  # the article edit
    for name, edit in EDITS.items():  # every edit changes a 3-word sentence
        assert edit(["the", "dog", "eats"], ["el", "perro"], random.Random(1)) != ["the", "dog", "eats"], name


def test_gold_score_and_pairs_by_hand():
    assert gold_score(80.0, 2, 10.0) == pytest.approx(60.0)
    cands = [
        Candidate("a", "reference", 100.0, 0, 100.0),
        Candidate("b", "sample", 60.0, 0, 60.0),
        Candidate("c", "sample", 80.0, 2, 60.0 + 3.0),
        Candidate("d", "corrupted", 97.0, 0, 97.0),
    ]
    pairs = draw_pairs(cands, 10, min_margin=5.0, rng=random.Random(0))
    # |Δgold| >= 5: (a,b) 40, (a,c) 37, (a,d) 3 ✗, (b,c) 3 ✗, (b,d) 37, (c,d) 34 → 4 pairs, chosen = higher gold
    assert sorted((c.text, r.text) for c, r in pairs) == [("a", "b"), ("a", "c"), ("d", "b"), ("d", "c")]
    assert len(draw_pairs(cands, 2, 5.0, random.Random(0))) == 2


def test_spec_refuses_noise_that_erases_the_labels():
    with pytest.raises(ValueError, match="label_noise"):
        TinyPreferenceSpec(label_noise=0.5)


def test_tiny_preference_set_splits_prompts_and_flips_only_train_and_val():
    import sacrebleu

    spec = TinyPreferenceSpec(
        prompt_data_args={"num_train": 60, "seed": 3000}, num_samples=1, label_noise=0.4, val_share=0.2, test_share=0.2
    )
    data = TinyPreferenceDataModule(spec, batch_size=8)
    data.prepare_data()
    manifest = data.manifest()
    prompts = {split: {p.prompt for p in data.pairs(split)} for split in ("train", "val", "test")}
    assert not (prompts["train"] & prompts["val"]) and not (prompts["train"] & prompts["test"])
    assert not (prompts["val"] & prompts["test"])
    assert manifest["splits"]["test"]["flipped_share"] == 0.0
    assert 0.2 < manifest["splits"]["train"]["flipped_share"] < 0.6  # p = 0.4 over ~70 pairs
    references = {r.prompt: r.reference for r in TinyMTDataModule(**spec.prompt_data_args).records("train")}
    other_references = 0
    for split in ("train", "test"):
        for pair in data.pairs(split):
            for text, kind in zip((pair.chosen, pair.rejected), pair.metadata["kinds"]):
                if kind == "other":  # fluent English for another sentence: a reference, never this prompt's
                    assert text in references.values() and text != references[pair.prompt]
                    other_references += 1
            chrf = [sacrebleu.sentence_chrf(t, [references[pair.prompt]]).score for t in (pair.chosen, pair.rejected)]
            gold = [c - 10.0 * n for c, n in zip(chrf, pair.metadata["lints"])]
            sign = -1 if pair.metadata["flipped"] else 1
            assert sign * (gold[0] - gold[1]) == pytest.approx(pair.metadata["gold_margin"], abs=1e-2)
            assert pair.metadata["gold_margin"] >= spec.min_margin
    assert other_references > 0
