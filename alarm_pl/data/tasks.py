"""The paper's two tasks as DataModules (PAPER.md §2).

- ``EuroparlMTDataModule``: Europarl es-en with the authors' split through Hugging Face ``datasets``
  (``data/europarl.py``: ``opus/europarl`` en-es by name, or a local copy of it), or, as an option, a split of two
  aligned plain-text files (the same procedure on other rows: not the authors' split).
- ``QAFeedbackDataModule``: QA-Feedback JSON files (lists of records with ``text``, ``question``, ``answer``,
  ``passages``) from the FineGrainedRLHF project; the whole test split is used unless ``max_test_prompts`` says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from alarm_pl.data.europarl import datasets_splits, load_europarl, text_file_splits
from alarm_pl.data.prompts import DataFormatError, PromptDataModule, PromptRecord

MT_PROMPT = "translate Spanish to English: {source}"
"""The authors' prompt (``MTDataset.prefix`` in ``MT/train_ppo.py``)."""


def _require_file(path: str, key: str) -> Path:
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"{key}: file not found: {file}")
    return file


class EuroparlMTDataModule(PromptDataModule):
    """Spanish→English translation prompts from Europarl (prompt ``translate Spanish to English: <es>``).

    The source is, in this order: the text files ``es_file`` + ``en_file`` when set (a seeded split of other rows,
    not the authors'); the local ``datasets`` copy ``dataset_path`` when set; else ``dataset_name`` from the hub
    (offline without a cached copy this fails at once, saying how to make a local copy).

    Args:
        dataset_name: Hugging Face data set id (authors: ``opus/europarl``).
        dataset_config: its configuration (authors: ``en-es``).
        dataset_path: local copy of that data set: a ``save_to_disk`` directory, a data set directory or a
            parquet/json/jsonl/csv/arrow file with a ``translation`` column of ``{"en", "es"}``.
        es_file: plain-text Spanish file, one sentence per line (e.g. ``europarl-v7.es-en.es``); needs ``en_file``.
        en_file: the aligned English file.
        num_pairs: leading pairs used (authors: 100,000).
        seed: split seed (authors: 42).
        batch_size: prompts per rollout per process (authors: 32).
        eval_batch_size: prompts per validation/test batch.
        max_eval_prompts: validation prompts used (authors: the first 2,000 of the 7,000 eval pairs).
        max_test_prompts: test prompts used (null: the whole 30,000-pair test split, as the authors' ``test``).
        group_by_length: training batches of pairs of similar length (SFT).
    """

    def __init__(
        self,
        dataset_name: str = "opus/europarl",
        dataset_config: str = "en-es",
        dataset_path: Optional[str] = None,
        es_file: Optional[str] = None,
        en_file: Optional[str] = None,
        num_pairs: int = 100_000,
        seed: int = 42,
        batch_size: int = 32,
        eval_batch_size: Optional[int] = None,
        max_eval_prompts: Optional[int] = 2000,
        max_test_prompts: Optional[int] = None,
        group_by_length: bool = False,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            max_eval_prompts=max_eval_prompts,
            max_test_prompts=max_test_prompts,
            group_by_length=group_by_length,
        )
        if (es_file is None) != (en_file is None):
            raise ValueError("data.init_args.es_file and data.init_args.en_file go together; set both or neither")
        self.dataset_name, self.dataset_config, self.dataset_path = dataset_name, dataset_config, dataset_path
        self.es_file, self.en_file, self.num_pairs, self.seed = es_file, en_file, num_pairs, seed
        self._pairs: Optional[dict[str, list[tuple[str, str]]]] = None

    def pairs(self) -> dict[str, list[tuple[str, str]]]:
        """``(es, en)`` pairs of every split, loaded and split once."""
        if self._pairs is None:
            if self.es_file is not None:
                es = _require_file(self.es_file, "data.init_args.es_file").read_text(encoding="utf-8").splitlines()
                en = _require_file(self.en_file, "data.init_args.en_file").read_text(encoding="utf-8").splitlines()
                self._pairs = text_file_splits(es, en, self.num_pairs, self.seed)
            else:
                dataset = load_europarl(self.dataset_name, self.dataset_config, self.dataset_path)
                self._pairs = datasets_splits(
                    dataset, self.num_pairs, self.seed, where=self.dataset_path or self.dataset_name
                )
        return self._pairs

    def load_split(self, split: str) -> list[PromptRecord]:
        pairs = self.pairs()[split]
        pairs = pairs[: self.limits[split]] if self.limits[split] else pairs
        return [PromptRecord(MT_PROMPT.format(source=es), en, {"source": es}) for es, en in pairs]


class QAFeedbackDataModule(PromptDataModule):
    """Long-form QA prompts from QA-Feedback JSON files (the record's ``text`` is the prompt).

    Args:
        train_file: ``train.json`` (a JSON list of records).
        val_file: ``dev.json``.
        test_file: ``test.json``.
        batch_size: prompts per rollout per process (paper: 8).
        eval_batch_size: prompts per validation/test batch.
        max_train_prompts, max_eval_prompts, max_test_prompts: use only the first N prompts of a split (null: all).
    """

    def load_split(self, split: str) -> list[PromptRecord]:
        path = _require_file(self.files[split] or "", f"data.init_args.{split}_file")
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataFormatError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
        if not isinstance(items, list):
            raise DataFormatError(f"{path}: expected a JSON list of records")
        records = [self._record(item, f"{path}[{i}]") for i, item in enumerate(items)]
        return records[: self.limits[split]] if self.limits[split] else records

    @staticmethod
    def _record(item: object, where: str) -> PromptRecord:
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise DataFormatError(f"{where}: expected an object with a string field 'text'")
        answers = item.get("answer") or []
        reference = answers[0] if isinstance(answers, list) and answers else None
        metadata = {"question": item.get("question"), "passages": item.get("passages", [])}
        return PromptRecord(item["text"], reference, metadata)
