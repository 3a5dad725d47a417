"""``python -m alarm_pl.eval compare RUN_1.jsonl RUN_2.jsonl [...] --out DIR [--judge.* ...]``.

Compares systems' generation files (system names are the file stems) by every reward and metric they carry and,
when ``--judge.model`` is given, by an LLM judge. Writes ``DIR/report.md``, ``DIR/results.json``,
``DIR/winrate_<metric>.png``, ``DIR/consistency.png`` and ``DIR/judge_cache.jsonl``, all atomically except the cache,
which is appended to reply by reply. The API key is read from the environment variable named by
``--judge.api_key_env``; it is never an option.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import typing
from pathlib import Path
from typing import Callable, Optional, Sequence

from alarm_pl.eval.config import JudgeConfig
from alarm_pl.eval.records import read_generations, write_text_atomic
from alarm_pl.eval.winrate import align_by_prompt

log = logging.getLogger("alarm_pl.eval")

CACHE_NAME = "judge_cache.jsonl"


def _converter(hint: object) -> Callable[[str], object]:
    """The argparse ``type`` of a ``JudgeConfig`` field from its hint (``Optional[int]`` -> int, Literal -> str).

    An optional field also accepts ``none`` (e.g. ``--judge.max_tokens none`` sends no limit).
    """
    optional = typing.get_origin(hint) is typing.Union and type(None) in typing.get_args(hint)
    if optional:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    kind = hint if hint in (int, float, str) else str

    def convert(text: str) -> object:
        return None if optional and text.lower() in ("none", "null") else kind(text)

    convert.__name__ = kind.__name__  # argparse names the type in its error messages
    return convert


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser; every ``JudgeConfig`` field is a ``--judge.<name>`` option."""
    parser = argparse.ArgumentParser(prog="python -m alarm_pl.eval", description=__doc__.split("\n\n")[1])
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="compare systems' generation files")
    compare.add_argument("runs", nargs="+", type=Path, help="generation files (JSON Lines), one per system")
    compare.add_argument("--out", type=Path, required=True, help="output directory")
    compare.add_argument("--lower_is_better", nargs="*", default=[], metavar="ASPECT",
                         help="aspects whose lower values are better, when the files do not declare it")
    compare.add_argument("--log_level", default="INFO", help="logging level (DEBUG, INFO, WARNING)")
    hints = typing.get_type_hints(JudgeConfig)
    for field in dataclasses.fields(JudgeConfig):
        hint = hints[field.name]
        choices = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None
        compare.add_argument(f"--judge.{field.name}", dest=f"judge.{field.name}", default=field.default,
                             type=_converter(hint), choices=choices,
                             help=f"{field.metadata['help']} (default: {field.default})")
    return parser


def judge_config(args: argparse.Namespace) -> JudgeConfig:
    """The ``JudgeConfig`` from the parsed ``--judge.*`` options."""
    return JudgeConfig(**{f.name: getattr(args, f"judge.{f.name}") for f in dataclasses.fields(JudgeConfig)})


def load_systems(paths: Sequence[Path]) -> dict[str, list]:
    """System name (file stem) -> records; two files with the same stem are an error."""
    systems: dict[str, list] = {}
    for path in paths:
        if path.stem in systems:
            raise ValueError(f"two generation files are named {path.stem!r}; system names come from file names, "
                             f"rename one of them ({path})")
        systems[path.stem] = read_generations(path)
    return systems


def add_judge(results: dict, alignment, config: JudgeConfig, out: Path) -> bool:
    """Run the judge into ``results["judge"]``; False when it could not work at all (the error is reported)."""
    from alarm_pl.eval.client import JudgeError
    from alarm_pl.eval.judge import run_judge
    from alarm_pl.eval.prompt import load_prompt
    from alarm_pl.eval.report import judge_results

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            log.info("judge: %d/%d replies", done, total)

    try:
        result = run_judge(alignment, config, str(out / CACHE_NAME), on_reply=progress)
    except JudgeError as err:
        log.error("%s", err)
        results["judge"] = {"model": config.model, "settings": config.public(), "error": str(err)}
        return False
    endpoint = config.base_url or "(openai client default)"
    results["judge"] = judge_results(result, config, endpoint, load_prompt(config.prompt_file).hash,
                                     results["systems"])
    return True


def write_outputs(results: dict, out: Path) -> None:
    """``results.json``, ``report.md`` and the PNG plots."""
    from alarm_pl.eval.plots import plot_consistency, plot_file_name, plot_win_rates
    from alarm_pl.eval.report import render_markdown

    write_text_atomic(out / "results.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(out / "report.md", render_markdown(results))
    for metric, table in results["win_rates"].items():
        direction = "higher" if table["higher_is_better"] else "lower"
        plot_win_rates(out / plot_file_name(metric), f"win rate by {metric} ({direction} is better)",
                       results["systems"], table["pairs"])
    if results["judge"] is not None and "pairs" in results["judge"]:
        plot_win_rates(out / plot_file_name("judge"), f"win rate by judge {results['judge']['model']}",
                       results["systems"], results["judge"]["pairs"])
    plot_consistency(out / "consistency.png", results["consistency"])


def compare(args: argparse.Namespace) -> int:
    """Run the ``compare`` command; returns the exit status."""
    from alarm_pl.eval.report import reward_results

    config = judge_config(args)
    systems = load_systems(args.runs)
    alignment = align_by_prompt(systems)
    results = reward_results(alignment, args.lower_is_better)
    results["files"] = {name: str(path) for name, path in zip(systems, args.runs)}
    judged = add_judge(results, alignment, config, args.out) if config.model else True
    if not config.model:
        log.info("no --judge.model given: the LLM judge is skipped")
    write_outputs(results, args.out)
    log.info("wrote %s", args.out / "report.md")
    return 0 if judged else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; ``argv`` defaults to ``sys.argv[1:]`` (tests pass a list)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "openai"):  # one INFO line per HTTP request drowns the progress
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        return compare(args)
    except (ValueError, FileNotFoundError) as err:
        log.error("%s", err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
