"""Prompt data: JSON Lines files (``prompt``, optional ``reference``, optional ``metadata``) and the tiny MT task.

Batches are ``PromptBatch`` containers of texts; the module tokenizes them with the policy's tokenizer (the data
module does not need to know the policy).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Sequence

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler
from torchdata.stateful_dataloader import StatefulDataLoader

from alarm_pl.data.sampling import LengthGroupedBatchSampler, ShardedRandomSampler


@dataclass(frozen=True)
class PromptRecord:
    """One prompt: its text, an optional reference and free metadata."""

    prompt: str
    reference: Optional[str] = None
    metadata: Optional[dict] = None
    source: Optional[str] = None
    """Where the record was read (``file:line``), for error messages."""


@dataclass(frozen=True)
class PromptBatch:
    """A batch of B prompts (texts; tokenized by the module)."""

    prompts: list[str]
    references: list[Optional[str]]
    metadata: list[dict]
    indices: Optional[list[int]] = None
    """Positions of the prompts in their split (de-duplicates generation files across processes)."""

    def __len__(self) -> int:
        return len(self.prompts)


class DataFormatError(ValueError):
    """A malformed prompt record; the message names file and line."""


def parse_record(obj: object, where: str) -> PromptRecord:
    """Validate one decoded JSON object; ``where`` ("file:line") goes into every error message."""
    if not isinstance(obj, dict):
        raise DataFormatError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise DataFormatError(f"{where}: missing or empty string field 'prompt'")
    reference = obj.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise DataFormatError(f"{where}: field 'reference' must be a string or null, got {type(reference).__name__}")
    metadata = obj.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise DataFormatError(f"{where}: field 'metadata' must be an object, got {type(metadata).__name__}")
    return PromptRecord(prompt, reference, metadata, source=where)


def read_jsonl(path: str | Path, limit: Optional[int] = None) -> list[PromptRecord]:
    """Read a JSON Lines prompt file (blank lines skipped); errors name ``file:line``."""
    return read_jsonl_objects(path, parse_record, "prompt", "records", limit)


def read_jsonl_objects(path: str | Path, parse, kind: str, plural: str, limit: Optional[int] = None) -> list:
    """Read a JSON Lines file of ``kind`` items, each line parsed by ``parse(obj, "file:line")``; blank lines are
    skipped, at most ``limit`` items are read.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names the ``kind`` of file).
        DataFormatError: invalid JSON (``file:line`` and column), what ``parse`` refuses, or no item at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} file not found: {path}")
    items = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line.rstrip("\r\n"))  # an error at the end of the line: its column, not 1
            except json.JSONDecodeError as err:
                raise DataFormatError(f"{path}:{number}: invalid JSON ({err.msg} at column {err.colno})") from None
            items.append(parse(obj, f"{path}:{number}"))
            if limit is not None and len(items) >= limit:
                break
    if not items:
        raise DataFormatError(f"{path}: no {plural}")
    return items


def collate(items: Sequence[tuple[int, PromptRecord]]) -> PromptBatch:
    records = [record for _, record in items]
    return PromptBatch(
        [r.prompt for r in records],
        [r.reference for r in records],
        [dict(r.metadata or {}) for r in records],
        [index for index, _ in items],
    )


class _Records(Dataset):
    def __init__(self, records: list[PromptRecord]) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[int, PromptRecord]:
        return index, self.records[index]


def stateful_loader(dataset: Dataset, **kwargs) -> StatefulDataLoader:
    """A torchdata ``StatefulDataLoader`` (its position is saved in every checkpoint and restored on resume)."""
    with warnings.catch_warnings():  # torchdata 0.11 calls a torch API that torch 2.13 deprecates, on every loader
        warnings.filterwarnings("ignore", message=".*set_vital.*")
        return StatefulDataLoader(dataset, **kwargs)


def evaluation_loader(dataset: Dataset, **kwargs) -> DataLoader:
    """A ``DataLoader`` in the dataset's order for validation and test that leaves the run's random state alone.

    A ``DataLoader`` without a generator draws its workers' base seed from torch's global generator every time it is
    iterated — the generator PPO samples from and dropout reads — so each validation shifted every later rollout:
    a run with validation every 2 rollouts and one without it trained differently from the first validation on. The
    base seed comes from a generator of the loader's own instead (fixed: evaluation has no randomness to vary).
    """
    return DataLoader(dataset, shuffle=False, generator=torch.Generator().manual_seed(0), **kwargs)


def processes(trainer: Optional[pl.Trainer]) -> tuple[int, int]:
    """(world size, rank) of ``trainer`` when a data module is attached to one, else of torch.distributed."""
    if trainer is not None:
        return trainer.world_size, trainer.global_rank
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def _check_sizes(**sizes: Optional[int]) -> None:
    """Refuse a non-positive batch size or prompt limit (null allowed: the default), naming the ``data.*`` key."""
    for key, value in sizes.items():
        if value is not None and value < 1:
            raise ValueError(f"data.{key} must be >= 1, got {value}")


class PromptDataModule(pl.LightningDataModule):
    """Prompts from JSON Lines files.

    Args:
        train_file: JSONL of training prompts.
        val_file: JSONL of validation prompts (validation generations and metrics).
        test_file: JSONL of test prompts (the generation file of ``test``).
        batch_size: prompts per rollout per process.
        eval_batch_size: prompts per validation/test batch (default: batch_size).
        max_train_prompts: use only the first N training prompts.
        max_eval_prompts: use only the first N validation prompts (paper MT: 2,000 for in-training eval).
        max_test_prompts: use only the first N test prompts (null: the whole test split, as the paper reports).
        num_workers: DataLoader workers.
        group_by_length: training batches of examples of similar length (prompt + reference characters), for less
            padding in SFT (``data/sampling.py``).
    """

    def __init__(
        self,
        train_file: Optional[str] = None,
        val_file: Optional[str] = None,
        test_file: Optional[str] = None,
        batch_size: int = 8,
        eval_batch_size: Optional[int] = None,
        max_train_prompts: Optional[int] = None,
        max_eval_prompts: Optional[int] = None,
        max_test_prompts: Optional[int] = None,
        num_workers: int = 0,
        group_by_length: bool = False,
    ) -> None:
        super().__init__()
        _check_sizes(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            max_train_prompts=max_train_prompts,
            max_eval_prompts=max_eval_prompts,
            max_test_prompts=max_test_prompts,
        )
        if num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {num_workers}")
        self.group_by_length = group_by_length
        self.files = {"train": train_file, "val": val_file, "test": test_file}
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.limits = {"train": max_train_prompts, "val": max_eval_prompts, "test": max_test_prompts}
        self.num_workers = num_workers
        self._splits: dict[str, list[PromptRecord]] = {}

    def load_split(self, split: str) -> list[PromptRecord]:
        """The records of ``split`` ("train" | "val" | "test"); subclasses generate or convert their data here."""
        path = self.files[split]
        if path is None:
            raise ValueError(f"data.{split}_file is not set but the {split} split is needed")
        return read_jsonl(path, self.limits[split])

    def setup(self, stage: str) -> None:
        """Read the splits ``stage`` uses now: Lightning calls this before the module's ``setup`` loads any model,
        so a missing or malformed file fails in seconds, naming ``file:line``."""
        validation = ["val"] if self.files["val"] else []  # a fit without a validation file may run none
        for split in {"fit": ["train", *validation], "validate": ["val"], "test": ["test"]}.get(stage, []):
            self.records(split)

    def records(self, split: str) -> list[PromptRecord]:
        """The records of ``split``, loaded once (``load_split``) and kept."""
        if split not in self._splits:
            self._splits[split] = self.load_split(split)
        return self._splits[split]

    def train_dataloader(self) -> StatefulDataLoader:
        """Shuffled training batches from a resumable loader: Lightning saves its position (and its generator) in
        every checkpoint and restores it on resume, so a resumed run sees the batches an uninterrupted one would
        (``data/sampling.py``).

        The order comes from a generator of its own, seeded with the run's seed (``seed_everything``), so that
        nothing the policy draws (sampling, minibatch order, dropout) shifts the data order, and the other way round.
        Under DDP every process takes its shard of the same order.
        """
        records = _Records(self.records("train"))
        seed = torch.initial_seed()
        order = torch.Generator().manual_seed(seed)
        world, rank = processes(self.trainer)
        if self.group_by_length:
            lengths = [len(r.prompt) + len(r.reference or "") for r in records.records]
            batches = LengthGroupedBatchSampler(
                RandomSampler(records, generator=order),
                self.batch_size,
                drop_last=True,
                lengths=lengths,
                generator=order,
            )
            loader = stateful_loader(records, batch_sampler=batches, collate_fn=collate, num_workers=self.num_workers)
        else:
            sampler = ShardedRandomSampler(
                len(records), order, num_replicas=world, rank=rank, drop_last_batch_size=self.batch_size
            )
            loader = stateful_loader(
                records,
                batch_size=self.batch_size,
                sampler=sampler,
                collate_fn=collate,
                num_workers=self.num_workers,
                drop_last=True,
            )
        # the loader draws its workers' base seed from a generator of its own, never from the order's
        loader.generator = torch.Generator().manual_seed((seed + 1) % 2**63)
        return loader

    def _eval_loader(self, split: str) -> DataLoader:
        return evaluation_loader(
            _Records(self.records(split)),
            batch_size=self.eval_batch_size,
            collate_fn=collate,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")


class TinyMTDataModule(PromptDataModule):
    """The project's own tiny Spanish→English task (``alarm_pl.data.tiny_mt``), generated in memory.

    Every sentence belongs to one pool (``sft``, ``rl``, ``val``, ``test``) fixed by its text, so the splits never
    share a prompt and the supervised stage never sees PPO's prompts.

    Args:
        num_train: training prompts.
        num_val: validation prompts.
        num_test: test prompts.
        train_pool: the pool of the training split: ``rl`` for PPO, ``sft`` for supervised fine-tuning.
        sloppy_references: share of the places where the training references are written sloppily (``do`` for
            ``does``, the bare verb for the third person, ``a`` for ``an``; ``tiny_mt.sloppy``); validation and test
            references are always correct. The tiny SFT recipe uses 0.6.
        seed: data seed (which sentences of each pool are drawn, and in which order).
        batch_size: prompts per rollout (or SFT examples per step) per process.
        eval_batch_size: prompts per validation/test batch.
        group_by_length: training batches of examples of similar length (SFT).
    """

    def __init__(
        self,
        num_train: int = 2048,
        num_val: int = 32,
        num_test: int = 64,
        train_pool: Literal["rl", "sft"] = "rl",
        sloppy_references: float = 0.0,
        seed: int = 0,
        batch_size: int = 16,
        eval_batch_size: Optional[int] = None,
        group_by_length: bool = False,
    ) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, group_by_length=group_by_length)
        if not 0.0 <= sloppy_references <= 1.0:
            raise ValueError(f"data.init_args.sloppy_references must be in [0, 1], got {sloppy_references}")
        self.sloppy = {"train": sloppy_references, "val": 0.0, "test": 0.0}
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.pools = {"train": train_pool, "val": "val", "test": "test"}
        self.seed = seed

    def load_split(self, split: str) -> list[PromptRecord]:
        from alarm_pl.data.tiny_mt import records

        pool = self.pools[split]
        return [
            parse_record(r, f"tiny_mt[{pool}]") for r in records(self.sizes[split], pool, self.seed, self.sloppy[split])
        ]
