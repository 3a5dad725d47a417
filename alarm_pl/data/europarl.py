"""Europarl es-en for the MT task: the authors' split through Hugging Face ``datasets``, or a split of text files.

The authors (``MT/train_ppo.py`` ``main`` and ``test``) load ``load_dataset("opus/europarl", name="en-es")["train"]``,
keep its first 100,000 rows, split them with ``train_test_split(test_size=0.3, seed=42)`` into train and test, split
train again with ``train_test_split(test_size=0.1, seed=42)`` into RL-train (63,000) and eval (7,000, of which the
first 2,000 are used during training), and read ``row["translation"]["es"]`` / ``["en"]``. ``datasets_splits`` does
exactly that with the ``datasets`` library, on the data set loaded by name, or from a local copy when the hub is not
reachable (``load_europarl``).

``text_file_splits`` splits two aligned plain-text files (e.g. Europarl v7's ``europarl-v7.es-en.es`` / ``.en``) with
the same index permutation as ``datasets``' ``train_test_split`` (``np.random.default_rng(seed).permutation(n)``, the
first ``ceil(test_size · n)`` indices are the test part). Those files are not the rows of ``opus/europarl``, so this is
*not* the authors' split, only the same procedure on other data.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

import numpy as np

from alarm_pl.data.prompts import DataFormatError
from alarm_pl.models.loading import DEFAULT_HUB_TIMEOUT_S, HubUnavailableError, hub_offline

Pair = tuple[str, str]
TEST_SIZE, VAL_SIZE = 0.3, 0.1
"""The authors' ``train_test_split`` sizes: 30 % of the pairs are test, 10 % of the rest are eval."""
_FILE_BUILDERS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv", ".arrow": "arrow"}


def split_indices(n: int, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices of ``datasets.Dataset.train_test_split(test_size=..., seed=...)`` for n rows.

    ``datasets`` (2.x to 5.x) draws ``np.random.default_rng(seed).permutation(n)``; test is its first
    ``ceil(test_size · n)`` entries, train the rest, both in permutation order.
    """
    permutation = np.random.default_rng(seed).permutation(n)
    n_test = math.ceil(test_size * n)
    return permutation[n_test:], permutation[:n_test]


def text_file_splits(
    es_lines: list[str], en_lines: list[str], num_pairs: int = 100_000, seed: int = 42
) -> dict[str, list[Pair]]:
    """Train (63 %), val (7 %) and test (30 %) pairs of two aligned text files (see the module docstring).

    The first ``num_pairs`` line pairs are taken; pairs with an empty side are dropped before splitting.
    """
    if len(es_lines) != len(en_lines):
        raise DataFormatError(
            f"Europarl files are not aligned: {len(es_lines)} Spanish vs {len(en_lines)} English lines"
        )
    pairs = [
        (es.strip(), en.strip())
        for es, en in zip(es_lines[:num_pairs], en_lines[:num_pairs])
        if es.strip() and en.strip()
    ]
    train_all, test = split_indices(len(pairs), TEST_SIZE, seed)
    train, val = split_indices(len(train_all), VAL_SIZE, seed)
    return {
        "train": [pairs[train_all[i]] for i in train],
        "val": [pairs[train_all[i]] for i in val],
        "test": [pairs[i] for i in test],
    }


def _check_rows(dataset, where: str) -> None:
    """Raise unless ``dataset`` has a ``translation`` column of ``{"en": ..., "es": ...}`` (opus/europarl en-es)."""
    if "translation" not in dataset.column_names:
        raise DataFormatError(
            f"{where}: expected a 'translation' column of {{'en': ..., 'es': ...}} (the rows of "
            f"opus/europarl en-es), got columns {dataset.column_names}"
        )
    first = dataset[0]["translation"] if len(dataset) else {"en": "", "es": ""}
    if not (isinstance(first, dict) and {"en", "es"} <= set(first)):
        raise DataFormatError(f"{where}: 'translation' must hold {{'en': ..., 'es': ...}}, got {first!r}")


def _pairs(dataset) -> list[Pair]:
    """``(es, en)`` of every row, in order."""
    return [(row["es"], row["en"]) for row in dataset["translation"]]


def datasets_splits(
    dataset, num_pairs: int = 100_000, seed: int = 42, where: str = "Europarl"
) -> dict[str, list[Pair]]:
    """The authors' split of a ``datasets.Dataset`` (see the module docstring), as ``(es, en)`` pairs per split."""
    _check_rows(dataset, where)
    head = dataset.select(range(min(num_pairs, len(dataset))))
    outer = head.train_test_split(test_size=TEST_SIZE, seed=seed)
    inner = outer["train"].train_test_split(test_size=VAL_SIZE, seed=seed)
    return {"train": _pairs(inner["train"]), "val": _pairs(inner["test"]), "test": _pairs(outer["test"])}


def _local_copy(path: str, config: str, what: str):
    """A ``datasets.Dataset`` from a directory written by ``save_to_disk``, a data set directory or a data file."""
    import datasets

    local = Path(path).expanduser()
    if not local.exists():
        raise FileNotFoundError(f"{what}: local copy {str(local)!r} does not exist")
    if local.is_dir() and any((local / name).is_file() for name in ("dataset_dict.json", "state.json")):
        loaded = datasets.load_from_disk(str(local))
        if isinstance(loaded, datasets.DatasetDict):
            if "train" not in loaded:
                raise DataFormatError(f"{what}: {local} holds splits {list(loaded)}, expected a 'train' split")
            loaded = loaded["train"]
        return loaded
    if local.is_dir():
        return datasets.load_dataset(str(local), config, split="train")
    builder = _FILE_BUILDERS.get(local.suffix.lower())
    if builder is None:
        raise DataFormatError(
            f"{what}: cannot read {local}; give a save_to_disk directory or a {'/'.join(_FILE_BUILDERS)} file"
        )
    return datasets.load_dataset(builder, data_files=str(local), split="train")


def _copy_advice(name: str, config: str, what: str) -> str:
    return (
        f"on a machine with network access run `python -c \"import datasets; datasets.load_dataset('{name}', "
        f"'{config}', split='train').save_to_disk('DIR')\"`, copy DIR here and set {what} to it"
    )


def _from_hub(name: str, config: str, what: str, timeout: float):
    """Load ``name``/``config`` (train split) by name, failing within seconds when the hub cannot be used."""
    import datasets

    if not hub_offline():
        from huggingface_hub import HfApi

        try:
            HfApi().dataset_info(name, timeout=timeout)
        except Exception as err:  # noqa: BLE001 - network errors come in many types
            raise HubUnavailableError(
                f"data.init_args.dataset_name: the hub could not be reached within {timeout:g} s for data set "
                f"{name!r} ({type(err).__name__}: {err}); set HF_HUB_OFFLINE=1 to use a cached copy, or "
                f"{_copy_advice(name, config, what)}"
            ) from err
    try:
        return datasets.load_dataset(name, config, split="train")
    except (ConnectionError, FileNotFoundError) as err:
        raise HubUnavailableError(
            f"data.init_args.dataset_name: data set {name!r} ({config}) is not in the local cache and the hub is "
            f"offline (HF_HUB_OFFLINE); {_copy_advice(name, config, what)}"
        ) from err


def load_europarl(
    name: str,
    config: str,
    path: Optional[str] = None,
    what: str = "data.init_args.dataset_path",
    timeout: float = DEFAULT_HUB_TIMEOUT_S,
):
    """The ``train`` split of the Europarl data set: from the local copy ``path`` when given, else by name.

    Args:
        name: hub data set id (authors: ``opus/europarl``).
        config: its configuration (authors: ``en-es``).
        path: a directory written by ``save_to_disk`` (a ``Dataset`` or a ``DatasetDict`` with ``train``), a
            downloaded data set directory, or a parquet/json/jsonl/csv/arrow file.
        what: the config key of ``path``, for messages.
        timeout: seconds for the one hub request that checks ``name``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        HubUnavailableError: loading by name is impossible (offline without cache, hub unreachable); the message
            says how to supply a local copy.
    """
    if path:
        return _local_copy(os.fspath(path), config, what)
    return _from_hub(name, config, what, timeout)
