"""Prompt data: JSONL parsing with errors naming file:line, the tiny task, the paper's task splits."""

import json

import pytest

from alarm_pl.data.europarl import datasets_splits, split_indices, text_file_splits
from alarm_pl.data.prompts import DataFormatError, PromptDataModule, TinyMTDataModule, read_jsonl
from alarm_pl.data.tasks import EuroparlMTDataModule, QAFeedbackDataModule
from alarm_pl.data.tiny_mt import pool_of, sentence_pairs, unique_pairs
from alarm_pl.models.loading import HubUnavailableError


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_records_and_batches(tmp_path):
    path = _write(
        tmp_path / "p.jsonl",
        [json.dumps({"prompt": "a", "reference": "x", "metadata": {"k": 1}}), "", json.dumps({"prompt": "b"})],
    )
    records = read_jsonl(path)
    assert [(r.prompt, r.reference, r.metadata) for r in records] == [("a", "x", {"k": 1}), ("b", None, {})]
    dm = PromptDataModule(train_file=str(path), val_file=str(path), batch_size=2)
    batch = next(iter(dm.val_dataloader()))
    assert batch.prompts == ["a", "b"] and batch.references == ["x", None] and batch.indices == [0, 1]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"prompt": "ok"', "p.jsonl:2: invalid JSON"),
        ('{"reference": "r"}', "p.jsonl:2: missing or empty string field 'prompt'"),
        ('{"prompt": "a", "reference": 3}', "p.jsonl:2: field 'reference' must be a string"),
        ('{"prompt": "a", "metadata": [1]}', "p.jsonl:2: field 'metadata' must be an object"),
        ("[1, 2]", "p.jsonl:2: expected a JSON object"),
    ],
)
def test_malformed_records_name_file_and_line(tmp_path, line, message):
    path = _write(tmp_path / "p.jsonl", [json.dumps({"prompt": "fine"}), line])
    with pytest.raises(DataFormatError, match=message.replace("(", r"\(").replace("[", r"\[")):
        read_jsonl(path)


def test_missing_file_and_unset_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="data.test_file is not set"):
        PromptDataModule(train_file="x").load_split("test")


def test_tiny_task_is_deterministic_and_its_pools_never_share_a_sentence():
    assert sentence_pairs(20, seed=3) == sentence_pairs(20, seed=3)
    dm = TinyMTDataModule(num_train=300, num_val=100, num_test=100, seed=0)
    splits = {split: dm.load_split(split) for split in ("train", "val", "test")}
    sft = TinyMTDataModule(num_train=300, train_pool="sft").load_split("train")
    assert [len(splits[s]) for s in ("train", "val", "test")] == [300, 100, 100]
    prompts = [{r.prompt for r in records} for records in (*splits.values(), sft)]
    assert sum(len(p) for p in prompts) == len(set().union(*prompts)) == 800  # pools are disjoint
    assert all(pool_of(r.metadata["source"]) == "rl" for r in splits["train"])
    assert all(r.prompt.startswith("translate Spanish to English: ") and r.reference for r in splits["train"])
    assert TinyMTDataModule(num_train=300, seed=0).load_split("train") == splits["train"]  # deterministic
    assert TinyMTDataModule(num_train=300, seed=1).load_split("train") != splits["train"]
    test = TinyMTDataModule(num_test=600).load_split("test")
    assert len({r.prompt for r in test}) == 600  # distinct: evaluation matches systems by prompt


def test_tiny_task_grammar():
    """Agreement, adjective order, a/an and do-support are what the small policy must learn."""
    pairs = dict(sentence_pairs(3000, seed=0))
    assert pairs["¿Qué come el perro?"] == "What does the dog eat?"
    negated = [(es, en) for es, en in pairs.items() if " no " in es]
    assert negated and all((" do not " in en) != (" does not " in en) for _, en in negated)
    assert any(" an " in en for en in pairs.values()) and not any(" a apple" in en for en in pairs.values())
    plural_indefinite = [en for es, en in pairs.items() if es.startswith(("Unos ", "Unas "))]
    assert plural_indefinite and all(en.startswith("Some ") for en in plural_indefinite)


def test_tiny_task_refuses_what_it_cannot_draw():
    with pytest.raises(ValueError, match="unknown tiny_mt pool 'train'"):
        unique_pairs(3, "train")
    with pytest.raises(ValueError, match="found only"):
        unique_pairs(50, "test", max_draws_per_pair=1)


def _europarl_dataset(n: int):
    """A ``datasets.Dataset`` shaped like opus/europarl en-es: one ``translation`` column of {"en", "es"}."""
    datasets = pytest.importorskip("datasets")
    return datasets.Dataset.from_dict({"translation": [{"en": f"Hello {i}.", "es": f"Hola {i}."} for i in range(n)]})


def _as_pairs(dataset) -> list[tuple[str, str]]:
    return [(row["es"], row["en"]) for row in dataset["translation"]]


def test_datasets_path_is_train_test_split_twice_with_seed_42(tmp_path):
    dataset = _europarl_dataset(1030)  # 1030 rows, 1000 kept: 300 test, 700 → 630 train + 70 val
    splits = datasets_splits(dataset, num_pairs=1000, seed=42)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [630, 70, 300]
    # the authors' calls (MT/train_ppo.py main), made here directly on the same rows
    outer = dataset.select(range(1000)).train_test_split(test_size=0.3, seed=42)
    inner = outer["train"].train_test_split(test_size=0.1, seed=42)
    assert splits["test"] == _as_pairs(outer["test"])
    assert splits["val"] == _as_pairs(inner["test"]) and splits["train"] == _as_pairs(inner["train"])
    assert ("Hola 1020.", "Hello 1020.") not in splits["train"] + splits["val"] + splits["test"]  # beyond num_pairs
    # another seed gives another split (the seed is used)
    assert datasets_splits(dataset, 1000, seed=7)["test"] != splits["test"]


def test_text_file_path_uses_the_same_permutation_on_its_own_rows():
    es = [f"Hola {i}." for i in range(1000)]
    en = [f"Hello {i}." for i in range(1000)]
    splits = text_file_splits(es, en, num_pairs=1000, seed=42)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [630, 70, 300]
    union = splits["train"] + splits["val"] + splits["test"]
    assert len(set(union)) == 1000 and all(e[5:] == n[6:] for e, n in union)  # pairs stay aligned
    # same rows in the same order → the split of datasets' train_test_split, index for index
    assert splits == datasets_splits(_europarl_dataset(1000), 1000, 42)
    # sizes round the test part up, as train_test_split does: 11 rows → 4 test (ceil 3.3), 7 → 1 val (ceil 0.7)
    train, test = split_indices(11, 0.3, 42)
    assert len(test) == 4 and len(train) == 7 and sorted([*train, *test]) == list(range(11))
    with pytest.raises(DataFormatError, match="not aligned"):
        text_file_splits(es, en[:-1])


@pytest.mark.parametrize("layout", ["dataset", "dataset_dict", "jsonl"])
def test_europarl_module_reads_a_local_datasets_copy(tmp_path, layout):
    dataset = _europarl_dataset(200)
    copy = tmp_path / ("copy.jsonl" if layout == "jsonl" else "copy")
    if layout == "dataset":
        dataset.save_to_disk(str(copy))
    elif layout == "dataset_dict":
        datasets = pytest.importorskip("datasets")
        datasets.DatasetDict({"train": dataset}).save_to_disk(str(copy))
    else:
        copy.write_text("".join(json.dumps(row) + "\n" for row in dataset))
    dm = EuroparlMTDataModule(dataset_path=str(copy), num_pairs=100, max_eval_prompts=3)
    expected = datasets_splits(dataset, 100, 42)
    assert [len(dm.load_split(s)) for s in ("train", "val", "test")] == [63, 3, 30]  # test is never cut
    first = dm.load_split("val")[0]
    assert first.prompt == f"translate Spanish to English: {expected['val'][0][0]}"
    assert first.reference == expected["val"][0][1] and first.metadata == {"source": expected["val"][0][0]}
    assert [r.reference for r in dm.load_split("test")] == [en for _, en in expected["test"]]


def test_europarl_by_name_offline_fails_fast_saying_how_to_supply_a_copy(monkeypatch, tmp_path):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "empty_cache"))
    dm = EuroparlMTDataModule(dataset_name="opus/europarl", dataset_config="en-es")
    with pytest.raises(HubUnavailableError, match=r"save_to_disk.*data.init_args.dataset_path"):
        dm.load_split("train")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # online, but the hub does not answer: one short request, then stop
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")

    def unreachable(self, repo_id, timeout=None, **kwargs):
        raise ConnectionError(f"no route to the hub for {repo_id} within {timeout} s")

    monkeypatch.setattr("huggingface_hub.HfApi.dataset_info", unreachable)
    with pytest.raises(HubUnavailableError, match=r"could not be reached within 5 s.*HF_HUB_OFFLINE=1.*save_to_disk"):
        dm.load_split("train")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        EuroparlMTDataModule(dataset_path=str(tmp_path / "nowhere")).load_split("train")
    (tmp_path / "bad.jsonl").write_text(json.dumps({"text": "no translation column"}) + "\n")
    with pytest.raises(DataFormatError, match="translation"):
        EuroparlMTDataModule(dataset_path=str(tmp_path / "bad.jsonl")).load_split("train")
    (tmp_path / "bad.txt").write_text("x")
    with pytest.raises(DataFormatError, match="cannot read"):
        EuroparlMTDataModule(dataset_path=str(tmp_path / "bad.txt")).load_split("train")
    with pytest.raises(ValueError, match="es_file and data.init_args.en_file"):
        EuroparlMTDataModule(es_file="a.es")


def test_europarl_and_qa_feedback_modules(tmp_path):
    _write(tmp_path / "a.es", [f"Hola {i}." for i in range(50)])
    _write(tmp_path / "a.en", [f"Hello {i}." for i in range(50)])
    dm = EuroparlMTDataModule(
        es_file=str(tmp_path / "a.es"), en_file=str(tmp_path / "a.en"), num_pairs=50, max_eval_prompts=3
    )
    val = dm.load_split("val")
    assert len(val) == 3 and val[0].prompt.startswith("translate Spanish to English: Hola")
    assert len(dm.load_split("test")) == 15  # max_eval_prompts does not cut the test split (ceil(0.3 · 50))
    assert (
        len(
            EuroparlMTDataModule(
                es_file=str(tmp_path / "a.es"), en_file=str(tmp_path / "a.en"), num_pairs=50, max_test_prompts=4
            ).load_split("test")
        )
        == 4
    )
    qa = [
        {
            "text": "question: q? context: wikipage: W text: t",
            "question": "q?",
            "answer": ["A."],
            "passages": [{"wikipage": "W", "content": "c"}],
        }
    ]
    (tmp_path / "train.json").write_text(json.dumps(qa))
    records = QAFeedbackDataModule(train_file=str(tmp_path / "train.json")).load_split("train")
    assert records[0].prompt == qa[0]["text"] and records[0].reference == "A."
    assert records[0].metadata["passages"][0]["wikipage"] == "W" and records[0].metadata["question"] == "q?"
    (tmp_path / "test.json").write_text(json.dumps(qa * 5))
    cut = QAFeedbackDataModule(test_file=str(tmp_path / "test.json"), max_eval_prompts=2)
    assert len(cut.load_split("test")) == 5  # the test split stays whole
    assert len(QAFeedbackDataModule(test_file=str(tmp_path / "test.json"), max_test_prompts=2).load_split("test")) == 2
    (tmp_path / "bad.json").write_text(json.dumps([{"question": "no text"}]))
    with pytest.raises(DataFormatError, match=r"bad.json\[0\]"):
        QAFeedbackDataModule(train_file=str(tmp_path / "bad.json")).load_split("train")
    with pytest.raises(FileNotFoundError, match="data.init_args.es_file"):
        EuroparlMTDataModule(es_file=str(tmp_path / "missing.es"), en_file=str(tmp_path / "a.en")).load_split("train")
