"""The sweep's runs and their command lines: one ``fit --test_after_fit`` per system × seed, plus the starting policy.

A *system* is one reward strategy combined with one value of every ``--sweep`` key (e.g. ``hierarchical`` or
``hierarchical,mode=auto``); every system is trained once per seed from the same configuration and the same
overrides. The starting policy (``start``) is tested once, without training: greedy decoding does not depend on the
seed.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from alarm_pl.config import Strategy

STRATEGY_KEY = "model.reward.strategy"
START = "start"
"""The system name of the untrained starting policy."""
STRATEGIES: tuple[str, ...] = Strategy.__args__


@dataclass(frozen=True)
class Sweep:
    """One swept configuration key and its values (``--sweep KEY=V1,V2``)."""

    key: str
    values: tuple[str, ...]

    @property
    def short(self) -> str:
        """The key's last component, used in system names (``model.selection.mode`` -> ``mode``)."""
        return self.key.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Run:
    """One training (or, for ``start``, testing) run of the sweep.

    Attributes:
        system: the system's name.
        seed: ``seed_everything`` of the run (None for ``start``).
        overrides: the dotted ``--key value`` overrides that make the system, in order.
        directory: the run's directory (logs, checkpoints, generation files, marker).
    """

    system: str
    seed: Optional[int]
    overrides: tuple[str, ...]
    directory: Path

    @property
    def name(self) -> str:
        return self.system if self.seed is None else f"{self.system}/seed{self.seed}"

    @property
    def generations_dir(self) -> Path:
        return self.directory / "generations"


def parse_sweep(text: str) -> Sweep:
    """``KEY=V1,V2,...`` -> Sweep; the key is a dotted config key without the leading ``--``.

    Raises:
        ValueError: no ``=``, an empty key or value, or the strategy key (use ``--strategies``).
    """
    key, sep, values = text.partition("=")
    key = key.strip().lstrip("-")
    items = tuple(v.strip() for v in values.split(","))
    if not sep or not key or not all(items):
        raise ValueError(f"--sweep {text!r}: expected KEY=V1,V2 (e.g. model.selection.mode=fixed,auto)")
    if key.replace(".init_args", "") == STRATEGY_KEY:
        raise ValueError(f"--sweep {text!r}: strategies are swept with --strategies")
    return Sweep(key, items)


def slug(name: str) -> str:
    """A directory name for a system name (characters other than letters, digits, ``_.=-`` become ``-``)."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", name)


def systems(strategies: Sequence[str], sweeps: Sequence[Sweep]) -> list[tuple[str, tuple[str, ...]]]:
    """Every (system name, its overrides) of the sweep: strategies × the sweeps' values, in the given order.

    Raises:
        ValueError: an unknown strategy, or a system listed twice.
    """
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"--strategies: unknown {unknown}; expected some of {list(STRATEGIES)}")
    out = []
    for strategy in strategies:
        for values in itertools.product(*(sweep.values for sweep in sweeps)):
            name = ",".join([strategy, *(f"{s.short}={v}" for s, v in zip(sweeps, values))])
            overrides = (f"--{STRATEGY_KEY}", strategy)
            for sweep, value in zip(sweeps, values):
                overrides += (f"--{sweep.key}", value)
            out.append((name, overrides))
    names = [name for name, _ in out]
    if len(set(names)) != len(names) or START in names:
        raise ValueError(f"the sweep names some system twice (or '{START}'): {names}")
    return out


def plan_runs(
    strategies: Sequence[str], seeds: Sequence[int], sweeps: Sequence[Sweep], out: Path, baseline: bool
) -> list[Run]:
    """The runs: the starting policy first (when ``baseline``), then every system × seed, seed by seed."""
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"--seeds must be distinct and at least one, got {list(seeds)}")
    runs = [Run(START, None, (), out / "runs" / START)] if baseline else []
    for seed in seeds:
        for name, overrides in systems(strategies, sweeps):
            runs.append(Run(name, seed, overrides, out / "runs" / slug(name) / f"seed{seed}"))
    return runs


def command(run: Run, config: str, extra: Sequence[str]) -> list[str]:
    """The run's command line: ``fit --test_after_fit true`` (``test`` for ``start``) on ``config`` with the user's
    ``extra`` overrides, then the system's overrides, the seed, and the run's own output places (a CSV logger, the
    generation files) last, so they win."""
    subcommand = "test" if run.system == START else "fit"
    args = [sys.executable, "-m", "alarm_pl", subcommand, "--config", config, *extra, *run.overrides]
    args += ["--seed_everything", str(run.seed if run.seed is not None else 0)]
    logger = json.dumps(
        {
            "class_path": "lightning.pytorch.loggers.CSVLogger",
            "init_args": {"save_dir": str(run.directory), "name": "logs"},
        }
    )
    args += [
        "--trainer.default_root_dir",
        str(run.directory),
        "--trainer.logger",
        logger,
        "--model.generations_dir",
        str(run.generations_dir),
    ]
    return args + (["--test_after_fit", "true"] if subcommand == "fit" else [])
