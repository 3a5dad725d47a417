"""The paper's two tasks as DataModules over files the user downloads once (PAPER.md §2); nothing is fetched here.

- ``EuroparlMTDataModule``: Europarl v7 es-en as the two aligned plain-text files; the authors' split (first 100,000
  pairs, 70/30 train/test with seed 42, train again 90/10 RL-train/eval with seed 42).
- ``QAFeedbackDataModule``: QA-Feedback JSON files (lists of records with ``text``, ``question``, ``answer``,
  ``passages``) from the FineGrainedRLHF project.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Optional

from alarm_pl.data.prompts import DataFormatError, PromptDataModule, PromptRecord

MT_PROMPT = "translate Spanish to English: {source}"


def _require_file(path: str, key: str) -> Path:
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"{key}: file not found: {file}")
    return file


def europarl_splits(es_lines: list[str], en_lines: list[str], num_pairs: int = 100_000,
                    seed: int = 42) -> dict[str, list[tuple[str, str]]]:
    """The authors' split of the first ``num_pairs`` aligned pairs into train (63 %), val (7 %) and test (30 %)."""
    if len(es_lines) != len(en_lines):
        raise DataFormatError(f"Europarl files are not aligned: {len(es_lines)} Spanish vs {len(en_lines)} English lines")
    pairs = [(es.strip(), en.strip()) for es, en in zip(es_lines[:num_pairs], en_lines[:num_pairs])
             if es.strip() and en.strip()]
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    cut = int(0.7 * len(order))
    train_all, test = order[:cut], order[cut:]
    random.Random(seed).shuffle(train_all)
    cut = int(0.9 * len(train_all))
    return {"train": [pairs[i] for i in train_all[:cut]], "val": [pairs[i] for i in train_all[cut:]],
            "test": [pairs[i] for i in test]}


class EuroparlMTDataModule(PromptDataModule):
    """Spanish→English translation prompts from Europarl v7 (prompt ``translate Spanish to English: <es>``).

    Args:
        es_file: ``europarl-v7.es-en.es`` (one sentence per line).
        en_file: ``europarl-v7.es-en.en``, aligned line by line.
        num_pairs: leading pairs used (paper: 100,000).
        seed: split seed (paper: 42).
        batch_size: prompts per rollout per process (paper: 32).
        eval_batch_size: prompts per validation/test batch.
        max_eval_prompts: validation/test prompts used (paper: 2,000 for in-training evaluation).
    """

    def __init__(self, es_file: str, en_file: str, num_pairs: int = 100_000, seed: int = 42, batch_size: int = 32,
                 eval_batch_size: Optional[int] = None, max_eval_prompts: Optional[int] = 2000) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, max_eval_prompts=max_eval_prompts)
        self.es_file, self.en_file, self.num_pairs, self.seed = es_file, en_file, num_pairs, seed
        self._pairs: Optional[dict[str, list[tuple[str, str]]]] = None

    def load_split(self, split: str) -> list[PromptRecord]:
        if self._pairs is None:
            es = _require_file(self.es_file, "data.init_args.es_file").read_text(encoding="utf-8").splitlines()
            en = _require_file(self.en_file, "data.init_args.en_file").read_text(encoding="utf-8").splitlines()
            self._pairs = europarl_splits(es, en, self.num_pairs, self.seed)
        pairs = self._pairs[split][: self.limits[split]] if self.limits[split] else self._pairs[split]
        return [PromptRecord(MT_PROMPT.format(source=es), en, {"source": es}) for es, en in pairs]


class QAFeedbackDataModule(PromptDataModule):
    """Long-form QA prompts from QA-Feedback JSON files (the record's ``text`` is the prompt).

    Args:
        train_file: ``train.json`` (a JSON list of records).
        val_file: ``dev.json``.
        test_file: ``test.json``.
        batch_size: prompts per rollout per process (paper: 8).
        eval_batch_size: prompts per validation/test batch.
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
