"""Preference pairs for reward-model training: JSON Lines files of ``{"prompt", "chosen", "rejected"}``.

One line is one comparison: the response ``chosen`` is preferred to ``rejected`` as an answer to ``prompt`` (the
format of Anthropic HH / UltraFeedback-style pairwise data sets). Any other field of a line is kept as the pair's
``metadata`` (e.g. the generator's ``flipped`` flag). Errors name ``file:line``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

from alarm_pl.data.prompts import DataFormatError, evaluation_loader, processes, read_jsonl_objects, stateful_loader
from alarm_pl.data.sampling import ShardedRandomSampler

PAIR_FIELDS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class PreferencePair:
    """One comparison: ``chosen`` is preferred to ``rejected`` as a response to ``prompt``."""

    prompt: str
    chosen: str
    rejected: str
    metadata: dict = field(default_factory=dict)
    """The line's other fields."""
    source: Optional[str] = None
    """Where the pair was read (``file:line``), for error messages."""

    def to_json(self) -> dict:
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected, **self.metadata}


@dataclass(frozen=True)
class PreferenceBatch:
    """B comparisons as texts (the module tokenizes them with its reward model's tokenizer)."""

    prompts: list[str]
    chosen: list[str]
    rejected: list[str]

    def __len__(self) -> int:
        return len(self.prompts)


def parse_pair(obj: object, where: str) -> PreferencePair:
    """Validate one decoded JSON line; ``where`` (``file:line``) goes into every error message.

    Raises:
        DataFormatError: not an object; ``prompt``, ``chosen`` or ``rejected`` missing or not a string; ``chosen`` or
            ``rejected`` empty; or both the same text (a pair that prefers nothing).
    """
    if not isinstance(obj, dict):
        raise DataFormatError(f"{where}: expected a JSON object with {list(PAIR_FIELDS)}, got {type(obj).__name__}")
    for key in PAIR_FIELDS:
        if not isinstance(obj.get(key), str):
            raise DataFormatError(
                f"{where}: field {key!r} must be a string, got "
                f"{'nothing' if key not in obj else type(obj[key]).__name__}"
            )
    if not obj["chosen"].strip() or not obj["rejected"].strip():
        raise DataFormatError(f"{where}: 'chosen' and 'rejected' must be non-empty responses")
    if obj["chosen"] == obj["rejected"]:
        raise DataFormatError(
            f"{where}: 'chosen' and 'rejected' are the same text, so the pair prefers nothing; drop the line"
        )
    metadata = {k: v for k, v in obj.items() if k not in PAIR_FIELDS}
    return PreferencePair(obj["prompt"], obj["chosen"], obj["rejected"], metadata, source=where)


def read_preferences(path: str | Path, limit: Optional[int] = None) -> list[PreferencePair]:
    """Read a JSON Lines preference file (blank lines skipped), at most ``limit`` pairs; errors name ``file:line``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataFormatError: a malformed line (see ``parse_pair``), or no pair at all.
    """
    return read_jsonl_objects(path, parse_pair, "preference", "preference pairs", limit)


def write_preferences(path: str | Path, pairs: Sequence[PreferencePair]) -> None:
    """Write pairs as JSON Lines, atomically (``eval.records.write_text_atomic``)."""
    from alarm_pl.eval.records import write_text_atomic

    write_text_atomic(path, "".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in pairs))


def collate_pairs(pairs: Sequence[PreferencePair]) -> PreferenceBatch:
    return PreferenceBatch([p.prompt for p in pairs], [p.chosen for p in pairs], [p.rejected for p in pairs])


class PreferenceDataModule(pl.LightningDataModule):
    """Preference pairs from JSON Lines files (``prompt``, ``chosen``, ``rejected``).

    Args:
        train_file: pairs to train on.
        val_file: held-out pairs (validation loss and pairwise accuracy).
        test_file: held-out pairs of ``test``.
        batch_size: pairs per training step (each pair is two reward-model inputs).
        eval_batch_size: pairs per validation/test batch (default: batch_size).
        max_train_pairs, max_eval_pairs, max_test_pairs: use only the first N pairs of a split (null: all).
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        train_file: Optional[str] = None,
        val_file: Optional[str] = None,
        test_file: Optional[str] = None,
        batch_size: int = 32,
        eval_batch_size: Optional[int] = None,
        max_train_pairs: Optional[int] = None,
        max_eval_pairs: Optional[int] = None,
        max_test_pairs: Optional[int] = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.files = {"train": train_file, "val": val_file, "test": test_file}
        self.limits = {"train": max_train_pairs, "val": max_eval_pairs, "test": max_test_pairs}
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers = num_workers
        self._splits: dict[str, list[PreferencePair]] = {}

    def split_file(self, split: str) -> str:
        """The file of ``split``; subclasses may create it here.

        Raises:
            ValueError: the split's file is not configured, naming the key.
        """
        path = self.files[split]
        if path is None:
            raise ValueError(f"data.init_args.{split}_file is not set but the {split} split is needed")
        return path

    def pairs(self, split: str) -> list[PreferencePair]:
        """The pairs of ``split`` (``train``, ``val`` or ``test``), read once."""
        if split not in self._splits:
            self._splits[split] = read_preferences(self.split_file(split), self.limits[split])
        return self._splits[split]

    def _loader(self, split: str, batch_size: int) -> DataLoader:
        return evaluation_loader(
            self.pairs(split), batch_size=batch_size, collate_fn=collate_pairs, num_workers=self.num_workers
        )

    def train_dataloader(self) -> StatefulDataLoader:
        """The training pairs in a new random order every epoch, resumable exactly as PPO's and SFT's
        (``data/sampling.py``): the order comes from a generator seeded with the run's seed, and the
        ``StatefulDataLoader`` saves its position in every checkpoint. Under DDP every process takes its shard. The
        last, short batch is kept."""
        pairs = self.pairs("train")
        seed = torch.initial_seed()
        world, rank = processes(self.trainer)
        sampler = ShardedRandomSampler(len(pairs), torch.Generator().manual_seed(seed), num_replicas=world, rank=rank)
        loader = stateful_loader(
            pairs, batch_size=self.batch_size, sampler=sampler, collate_fn=collate_pairs, num_workers=self.num_workers
        )
        loader.generator = torch.Generator().manual_seed((seed + 1) % 2**63)  # workers' base seed, not the order's
        return loader

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size)
