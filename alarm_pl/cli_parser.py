"""The parser of the training-side commands (``python -m alarm_pl``, ``python -m alarm_pl.calibrate``): LightningCLI's
parser with three changes for a person at a terminal.

1. **``null`` reaches every depth.** jsonargparse 4.53 hands a dotted override below an argument chosen by
   ``class_path`` (``--model.ppo.target_kl null``: ``model`` is such an argument) to the class's own parser as the
   text ``f"--{key}={value}"`` of the value it has already loaded, so ``null`` arrives as ``str(None) == "None"``,
   which YAML reads as a string and an ``Optional[float]`` refuses (``_typehints.adapt_class_type``). Our parser mode
   reads YAML like jsonargparse's and a value that is exactly ``None`` as null: ``None`` is no YAML keyword, and no
   option of this project takes the text "None". Whole documents and values inside them are untouched.
2. **No abbreviations.** jsonargparse 4 expands an unambiguous prefix (``--model.ppo.clip_rang 0.1`` silently set
   ``clip_range``); v5 drops this, and so do we. The class parsers jsonargparse builds for ``class_path`` arguments
   are of their parent's class, so the setting reaches them too.
3. **Short errors, message last.** A bad argument prints one tip and the message (the option's full key, the closest
   real option or value) instead of ~110 lines of usage; ``ALARM_PL_DEBUG=1`` restores jsonargparse's full output.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

from lightning.pytorch.cli import LightningArgumentParser

from alarm_pl.console import debug_requested

PARSER_MODE = "alarm_pl_yaml"


def load_yaml_value(text: str):
    """jsonargparse's YAML loader, except that a value that is exactly ``None`` loads as null (see point 1 above)."""
    from jsonargparse import get_loader

    if text.strip() == "None":
        return None
    return get_loader("yaml")(text)


def _register_parser_mode() -> None:
    import yaml
    from jsonargparse import set_loader

    set_loader(PARSER_MODE, load_yaml_value, exceptions=(yaml.YAMLError,))


class ProjectArgumentParser(LightningArgumentParser):
    """``LightningArgumentParser`` without abbreviations, with ``None`` read as null and short error messages."""

    def __init__(self, *args, **kwargs) -> None:
        _register_parser_mode()
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("parser_mode", PARSER_MODE)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Optional[Exception] = None):
        """Print a tip and the explained message (last), exit with status 2; inner parsers raise as before."""
        if not self.exit_on_error or debug_requested():
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        sys.stderr.write(
            f"tip: `{prog} --help` lists every option (ALARM_PL_DEBUG=1 shows the parser's full "
            f"report)\nerror: {explain_parse_error(message, parser)}\n"
        )
        self.exit(2)


# ---------------------------------------------------------------------------------------------- explaining errors
_CLASS = re.compile(r"Problem with given class_path '([\w.]+)'")
_KEY = re.compile(r'Parser key "([\w.]+)"')
_UNKNOWN = [
    re.compile(r"Group '([\w.]+)' does not accept option '([\w.]+)'"),
    re.compile(r"()Option '([\w.]+)' is not accepted"),
    re.compile(r"()does not accept option '([\w.]+)'"),
    re.compile(r"()unrecognized arguments: --([\w.]+)"),
]
_LITERAL = re.compile(r"Expected a typing\.Literal\[(.*)\]\. Got value: (.*)$")
_NOISE = re.compile(
    r"^(Does not validate against any of the Union subtypes|Subtypes: |Errors:$|"
    r"- Expected a <class 'NoneType'>|Given value type: |Given value: |$)"
)

OPTIMIZER_HINT = (
    "the optimizer is an argument of the module: --model.optimizer torch.optim.AdamW "
    "--model.optimizer.lr 1e-4 (and --model.lr_scheduler). LightningCLI's own top-level "
    "--optimizer/--lr_scheduler are switched off: they would be built over every parameter, and a "
    "LoRA policy's base weights are frozen"
)


def explain_parse_error(message: str, parser=None) -> str:
    """jsonargparse's error message made short: the option's full key and what is wrong with it, the closest real
    option for an unknown one (looked up in ``parser`` at the top level, in the class's arguments below a
    ``class_path``), the closest allowed value for a ``Literal``; the message itself when it has no known shape."""
    lines = [line.strip() for line in message.splitlines()]
    prefix = [m.group(1) for line in lines for m in [_KEY.match(line)] if m]
    classes = [m.group(1) for line in lines for m in [_CLASS.search(line)] if m]
    for pattern in _UNKNOWN:
        found = next((m for line in lines for m in [pattern.search(line)] if m), None)
        if found:
            key = ".".join(part for part in found.groups() if part)
            return _unknown_option(prefix, key, classes[-1] if classes else None, parser)
    reasons = [
        line.lstrip("- ") for line in lines if not (_NOISE.match(line) or _KEY.match(line) or _CLASS.search(line))
    ]
    if not reasons:
        return message
    where = ".".join(prefix)
    return (f"{where}: " if where else "") + "; ".join(reasons) + _literal_hint(reasons)


def _unknown_option(prefix: list[str], key: str, class_path: Optional[str], parser) -> str:
    full = ".".join([*prefix, key])
    if not prefix and key.split(".")[0] in ("optimizer", "lr_scheduler"):
        return f"--{full} is not an option here: {OPTIMIZER_HINT}"
    options = class_options(class_path) if class_path else parser_options(parser)
    match = difflib.get_close_matches(key, options, n=1, cutoff=0.6)
    where = f" of {class_path}" if class_path else ""
    hint = f"; did you mean {'.'.join([*prefix, match[0]])}?" if match else ""
    return f"{full}: no such option{where}{hint}"


def _literal_hint(reasons: list[str]) -> str:
    for reason in reasons:
        found = _LITERAL.search(reason)
        if found:
            allowed = [v.strip().strip("'\"") for v in found.group(1).split(",")]
            match = difflib.get_close_matches(found.group(2).strip(), allowed, n=1, cutoff=0.6)
            return f" (did you mean {match[0]}?)" if match else ""
    return ""


def parser_options(parser) -> list[str]:
    """The keys a parser accepts (``trainer.max_steps``, ``model``, ``ckpt_path``, ...)."""
    if parser is None:
        return []
    return [action.dest for action in parser._actions if action.dest not in ("help", "config", "print_config")]


def class_options(class_path: str) -> list[str]:
    """The keys below a ``class_path`` argument (``ppo.clip_range``, ``max_prompt_length``, ...); empty when the class
    cannot be imported."""
    from jsonargparse import ArgumentParser

    try:
        module, _, name = class_path.rpartition(".")
        cls = getattr(__import__(module, fromlist=[name]), name)
        parser = ArgumentParser(exit_on_error=False)
        parser.add_class_arguments(cls, fail_untyped=False)
    except Exception:  # an unimportable or unparsable class: no suggestion, the message still names the key
        return []
    return parser_options(parser)


def config_file_problem(argv: Sequence[str]) -> Optional[str]:
    """What is wrong with the first ``--config FILE`` of ``argv`` that is not valid YAML, as ``FILE:LINE:COLUMN:
    reason`` (jsonargparse would name neither the file nor the line); None when every one parses. A missing file
    and an inline YAML value are left to jsonargparse, which names the path."""
    import yaml

    values = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--config"]
    values += [arg.split("=", 1)[1] for arg in argv if arg.startswith("--config=")]
    for path in filter(os.path.isfile, values):
        try:
            yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            return f"--config {path}: cannot be read ({err})"
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
            return f"--config {path}{where}: not valid YAML ({getattr(err, 'problem', None) or err})"
    return None
