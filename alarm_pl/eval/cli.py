"""``python -m alarm_pl.eval compare RUN_1.jsonl RUN_2.jsonl [...] --out DIR [--judge.* ...]``.

Compares systems' generation files by every reward and metric they carry and,
when ``--judge.model`` is given, by an LLM judge. Writes ``DIR/report.md``, ``DIR/results.json``,
``DIR/winrate_<metric>.png``, ``DIR/consistency.png`` and ``DIR/judge_cache.jsonl``, all atomically except the cache,
which is appended to reply by reply. The API key is read from the environment variable named by
``--judge.api_key_env``; it is never an option.

A system is named ``NAME`` when given as ``NAME=FILE``; otherwise by its file's name, and when two files have the same
name (``test-step000100.jsonl`` of two runs) by the folders that tell them apart (a ``generations`` folder is skipped:
``…/logs/test-version_0-step000100/generations/test-step000100.jsonl`` becomes
``test-version_0-step000100/test-step000100``).

The options parse as in the training CLI (jsonargparse): ``compare --help`` documents every one (the ``JudgeConfig``
field docstrings), ``--config FILE.yaml`` reads them from YAML (``runs: [...]``, ``out: DIR``, ``judge: {model: ...}``),
later options override it, ``--print_config`` shows the result, and ``null`` unsets an optional value.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from alarm_pl.eval.config import JudgeConfig
from alarm_pl.eval.records import read_generations, write_text_atomic
from alarm_pl.eval.winrate import align_by_prompt

log = logging.getLogger("alarm_pl.eval")

CACHE_NAME = "judge_cache.jsonl"


def _compare_parser() -> Any:
    """The ``compare`` command's parser: files, output directory, and the ``JudgeConfig`` fields as ``--judge.*``."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(description="Compare systems' generation files.")
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of these options")
    parser.add_argument(
        "runs",
        nargs="+",
        type=str,
        help="generation files (JSON Lines), one per system, each FILE or NAME=FILE (unnamed "
        "systems are named by their file, or by the folders that tell same-named files apart)",
    )
    parser.add_argument("--out", type=str, required=True, help="output directory")
    parser.add_argument(
        "--lower_is_better",
        nargs="*",
        type=str,
        default=[],
        help="aspects whose lower values are better, when the files do not declare it",
    )
    parser.add_argument("--log_level", type=str, default="INFO", help="logging level (DEBUG, INFO, WARNING)")
    parser.add_argument(
        "--judge", type=JudgeConfig, default=JudgeConfig(), help="the LLM judge (skipped without --judge.model)"
    )
    return parser


def build_parser() -> Any:
    """The command-line parser (jsonargparse, like the training CLI): ``--help``, ``--config`` YAML files,
    ``--print_config`` and dotted ``--judge.<field>`` options, typed and documented by ``JudgeConfig``."""
    from jsonargparse import ArgumentParser, set_parsing_settings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)  # dataclass field docstrings become --help
    parser = ArgumentParser(prog="python -m alarm_pl.eval", description=__doc__.split("\n\n")[1])
    commands = parser.add_subcommands(required=True)
    commands.add_subcommand("compare", _compare_parser(), help="compare systems' generation files")
    return parser


def judge_config(config: Any) -> JudgeConfig:
    """The ``JudgeConfig`` of a parsed command line (the root namespace or the ``compare`` one).

    Raises:
        ValueError: naming the ``--judge.*`` option with an invalid value.
    """
    judge = (config.compare if "compare" in config else config).judge
    return judge if isinstance(judge, JudgeConfig) else JudgeConfig(**judge.as_dict())


def name_systems(specs: Sequence[str]) -> list[tuple[str, Path]]:
    """``(system name, file)`` for each ``FILE`` or ``NAME=FILE`` (see the module docstring).

    Raises:
        ValueError: the same file is given twice, or two systems are given the same name.
    """
    pairs = []
    for spec in specs:
        name, _, path = spec.partition("=")
        pairs.append((name, Path(path)) if path and not Path(spec).exists() else ("", Path(spec)))
    files = [path.resolve() for _, path in pairs]
    twice = next((path for path in files if files.count(path) > 1), None)
    if twice is not None:
        raise ValueError(f"the generation file {twice} is given twice; compare different files")
    auto = distinguishing_names([path for name, path in pairs if not name])
    named = [(name or next(auto), path) for name, path in pairs]
    seen: dict[str, Path] = {}
    for name, path in named:
        if name in seen:
            raise ValueError(f"two systems are named {name!r} ({seen[name]} and {path}); name them with NAME=FILE")
        seen[name] = path
    return named


def distinguishing_names(paths: Sequence[Path]):
    """An iterator over one name per path: its file stem, preceded by as many parent folders (``generations``
    skipped) as it takes to tell apart paths whose shorter names are equal."""
    parts = [[p.stem] + [d for d in reversed(p.resolve().parent.parts) if d not in ("generations", "/")] for p in paths]
    depth = [1] * len(paths)
    while True:
        names = ["/".join(reversed(part[:k])) for part, k in zip(parts, depth)]
        clashing = [i for i, n in enumerate(names) if names.count(n) > 1 and depth[i] < len(parts[i])]
        if not clashing:
            return iter(names)
        for i in clashing:
            depth[i] += 1


def load_systems(specs: Sequence[str]) -> tuple[dict[str, list], dict[str, str]]:
    """System name -> records, and system name -> file, for the ``runs`` arguments (``name_systems``)."""
    named = name_systems(specs)
    return {name: read_generations(path) for name, path in named}, {name: str(path) for name, path in named}


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
    results["judge"] = judge_results(result, config, endpoint, load_prompt(config.prompt_file).hash, results["systems"])
    return True


def write_outputs(results: dict, out: Path) -> list[str]:
    """``results.json``, ``report.md`` and the PNG plots; returns the names of the files written."""
    from alarm_pl.eval.plots import CONSISTENCY_PLOT, plot_consistency, plot_file_name, plot_win_rates
    from alarm_pl.eval.report import render_markdown

    write_text_atomic(out / "results.json", json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    plots = []
    for metric, table in results["win_rates"].items():
        direction = "higher" if table["higher_is_better"] else "lower"
        plots.append(plot_file_name(metric))
        plot_win_rates(
            out / plots[-1], f"win rate by {metric} ({direction} is better)", results["systems"], table["pairs"]
        )
    if results["judge"] is not None and "pairs" in results["judge"]:
        plots.append(plot_file_name("judge"))
        plot_win_rates(
            out / plots[-1],
            f"win rate by judge {results['judge']['model']}",
            results["systems"],
            results["judge"]["pairs"],
        )
    plot_consistency(out / CONSISTENCY_PLOT, results["consistency"])
    write_text_atomic(out / "report.md", render_markdown(results))  # last: it links the plots above
    return ["report.md", "results.json", *plots, CONSISTENCY_PLOT]


def compare(args: Any) -> int:
    """Run the ``compare`` command (its parsed namespace); returns the exit status."""
    from alarm_pl.eval.report import reward_results

    config = judge_config(args)
    out = Path(args.out)
    systems, files = load_systems(args.runs)
    alignment = align_by_prompt(systems)
    results = reward_results(alignment, args.lower_is_better)
    results["files"] = files
    judged = add_judge(results, alignment, config, out) if config.model else True
    if not config.model:
        log.info("no --judge.model given: the LLM judge is skipped")
    written = write_outputs(results, out) + ([CACHE_NAME] if config.model else [])
    log.info("compare finished; wrote into %s: %s", out, ", ".join(written))
    return 0 if judged else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; ``argv`` defaults to ``sys.argv[1:]`` (tests pass a list)."""
    args = build_parser().parse_args(None if argv is None else list(argv)).compare
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
