"""Running the sweep's runs as subprocesses, one after another or N at a time, and resuming an interrupted sweep.

A run is finished when its marker ``done.json`` exists, names the same command line and configuration file contents
(the sweep's settings did not change) and its test generation file is there with the recorded SHA-256. The marker is
written atomically after the process exited 0 and its test generation file was read back whole, so a run killed at any
point before that is redone from scratch (its directory is emptied first) and a finished one is never redone.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from alarm_pl.ablation.plan import Run
from alarm_pl.eval.records import read_generations, write_text_atomic

log = logging.getLogger("alarm_pl.ablation")

MARKER = "done.json"
LOG = "log.txt"


class SweepMismatch(ValueError):
    """A finished run in the output directory was made by another command line than the one planned now."""


@dataclass(frozen=True)
class Outcome:
    """What became of one run in this invocation.

    Attributes:
        run: the run.
        status: ``reused`` (finished before), ``ran`` (finished now) or ``failed``.
        wall_s, cpu_s: the run's wall-clock and CPU (user + system, its whole process tree) seconds, from its marker
            for a reused run; None when unknown.
        test_file: its test generation file (None when failed).
        error: why it failed.
    """

    run: Run
    status: str
    wall_s: Optional[float] = None
    cpu_s: Optional[float] = None
    test_file: Optional[Path] = None
    error: Optional[str] = None


def find_test_file(run: Run) -> Optional[Path]:
    """The run's test generation file ``test-stepNNNNNN.jsonl`` (the trained policy's, not ``test-baseline-*``)."""
    files = sorted(run.generations_dir.glob("test-step*.jsonl"))
    return files[-1] if files else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def config_digests(command: Sequence[str]) -> dict[str, Optional[str]]:
    """SHA-256 of each file the command line names after ``--config`` (None for a file that is not there): the same
    command line over an edited configuration is another run."""
    paths = [command[i + 1] for i, arg in enumerate(command[:-1]) if arg == "--config"]
    return {path: _sha256(Path(path)) if Path(path).is_file() else None for path in paths}


def finished(run: Run, command: Sequence[str]) -> Optional[dict]:
    """The run's marker when the run is finished (see the module docstring), else None.

    Raises:
        SweepMismatch: the marker records another command line or other configuration file contents, naming both
            and the way out.
    """
    marker = run.directory / MARKER
    if not marker.is_file():
        return None
    record = json.loads(marker.read_text(encoding="utf-8"))
    if record["command"] != list(command[1:]):
        raise SweepMismatch(
            f"{marker}: this run was made by another command line:\n  {' '.join(record['command'])}\n"
            f"now planned:\n  {' '.join(command[1:])}\nthe configuration, overrides or sweep changed; "
            f"use another --out, or delete {run.directory} to redo it"
        )
    changed = [
        path for path, digest in config_digests(command).items() if record.get("config_sha256", {}).get(path) != digest
    ]
    if changed:
        raise SweepMismatch(
            f"{marker}: {', '.join(changed)} changed since this run was made; use another --out, or "
            f"delete {run.directory} to redo it"
        )
    test_file = run.directory / record["test_file"]
    if not test_file.is_file() or _sha256(test_file) != record["sha256"]:
        log.warning("%s: its test file %s is missing or changed; the run is redone", run.name, test_file)
        return None
    return record


def run_process(command: Sequence[str], log_path: Path, env: dict) -> tuple[int, float, float]:
    """Run ``command`` with stdout and stderr into ``log_path``; returns (exit code, wall s, CPU s of the child)."""
    start = time.perf_counter()
    with open(log_path, "wb") as handle:
        process = subprocess.Popen(list(command), stdout=handle, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)  # wait4: this child's own resource usage
        process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def execute(run: Run, command: Sequence[str], env: dict) -> Outcome:
    """Run one run from an empty directory and write its marker on success."""
    if run.directory.exists():
        shutil.rmtree(run.directory)  # a half-finished earlier attempt: nothing of it is reused
    run.directory.mkdir(parents=True)
    code, wall, cpu = run_process(command, run.directory / LOG, env)
    if code != 0:
        return Outcome(run, "failed", wall, cpu, error=f"exit status {code}; see {run.directory / LOG}")
    test_file = find_test_file(run)
    if test_file is None:
        return Outcome(run, "failed", wall, cpu, error=f"no test generation file under {run.generations_dir}")
    records = read_generations(test_file)  # raises on a malformed file: a run is finished only with a whole one
    marker = {
        "command": list(command[1:]),
        "config_sha256": config_digests(command),
        "test_file": str(test_file.relative_to(run.directory)),
        "records": len(records),
        "sha256": _sha256(test_file),
        "wall_s": wall,
        "cpu_s": cpu,
        "finished_at": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    write_text_atomic(run.directory / MARKER, json.dumps(marker, indent=2) + "\n")
    return Outcome(run, "ran", wall, cpu, test_file)


def child_environment(parallel: int) -> dict:
    """The runs' environment: this one, unbuffered output, and with ``parallel`` > 1 and no ``OMP_NUM_THREADS`` set,
    the CPU cores shared out (``OMP_NUM_THREADS = max(1, cores // parallel)``) so N runs do not oversubscribe them."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if parallel > 1 and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // parallel))
    return env


def run_all(
    runs: Sequence[Run],
    commands: dict[str, list[str]],
    parallel: int,
    on_outcome: Optional[Callable[[Outcome, int, int], None]] = None,
) -> list[Outcome]:
    """Every run, finished ones reused, the others executed ``parallel`` at a time (in the given order).

    Args:
        runs: the planned runs.
        commands: run name -> its command line.
        parallel: processes at once (1: one after another).
        on_outcome: called with (outcome, number done, total) as each run ends or is found finished.

    Raises:
        SweepMismatch: before anything runs, when a finished run was made by another command line.
    """
    if parallel < 1:
        raise ValueError(f"--parallel must be >= 1, got {parallel}")
    outcomes: dict[str, Outcome] = {}
    todo = []
    for run in runs:
        marker = finished(run, commands[run.name])
        if marker is None:
            todo.append(run)
        else:
            outcomes[run.name] = Outcome(
                run, "reused", marker["wall_s"], marker.get("cpu_s"), run.directory / marker["test_file"]
            )
    done = len(outcomes)
    for outcome in outcomes.values():
        if on_outcome:
            on_outcome(outcome, done, len(runs))
    env = child_environment(parallel)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = {pool.submit(execute, run, commands[run.name], env): run for run in todo}
        for future in as_completed(futures):
            run = futures[future]
            try:
                outcomes[run.name] = future.result()
            except Exception as err:  # noqa: BLE001 - one broken run must not lose the others' results
                outcomes[run.name] = Outcome(run, "failed", error=f"{type(err).__name__}: {err}")
            done += 1
            if on_outcome:
                on_outcome(outcomes[run.name], done, len(runs))
    return [outcomes[run.name] for run in runs]
