"""Structure: the rollout callbacks' fixed order, and no back-edge from the callbacks or the evaluation suite to the
module they serve (they know it only through the ``PolicyScorer`` protocol)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from lightning.pytorch import Callback

from alarm_pl.callbacks.base import RolloutCallback, RolloutStage, rollout_pipeline
from alarm_pl.callbacks.composition import RewardComposition
from alarm_pl.callbacks.selection import AspectSelection
from alarm_pl.config import RewardConfig, SelectionConfig

PACKAGE = Path(__file__).parents[1] / "alarm_pl"
NO_MODULE = ("callbacks", "eval")  # packages that must not import alarm_pl.module


class UserA(RolloutCallback):
    pass


class UserB(RolloutCallback):
    pass


def test_pipeline_runs_selection_then_composition_then_user_callbacks_in_list_order() -> None:
    selection, composition = AspectSelection(SelectionConfig(), ["a"]), RewardComposition(RewardConfig())
    a, b, other = UserA(), UserB(), Callback()
    # Lightning's order: the trainer's callbacks first, then those the module installs
    assert rollout_pipeline([b, other, a, selection, composition]) == [selection, composition, b, a]
    assert [c.stage for c in (selection, composition, a)] == [
        RolloutStage.SELECTION,
        RolloutStage.COMPOSITION,
        RolloutStage.USER,
    ]
    assert rollout_pipeline([a, composition]) == [composition, a]  # selection is optional


def test_pipeline_needs_exactly_one_composition() -> None:
    selection, composition = AspectSelection(SelectionConfig(), ["a"]), RewardComposition(RewardConfig())
    with pytest.raises(RuntimeError, match=r"expected 1 composition callback\(s\), found none"):
        rollout_pipeline([selection, UserA()])
    with pytest.raises(RuntimeError, match=r"found \['RewardComposition', 'RewardComposition'\]"):
        rollout_pipeline([composition, RewardComposition(RewardConfig())])


def module_imports(source: str) -> list[str]:
    """Every ``alarm_pl.module`` import in Python source, TYPE_CHECKING blocks and function bodies included."""

    def is_module(name: str) -> bool:
        return name == "alarm_pl.module" or name.startswith("alarm_pl.module.")

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if is_module(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if is_module(node.module):
                found.append(node.module)
            elif node.module == "alarm_pl":
                found += [f"alarm_pl.{alias.name}" for alias in node.names if alias.name == "module"]
    return found


def test_the_import_scan_finds_every_spelling() -> None:
    source = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from alarm_pl.module import ALaRMModule\n"
        "import alarm_pl.module as m\ndef f():\n    from alarm_pl import module\n"
        "from alarm_pl.models import policy\nimport alarm_pl.modules_other\n"
    )
    assert module_imports(source) == ["alarm_pl.module", "alarm_pl.module", "alarm_pl.module"]


@pytest.mark.parametrize("package", NO_MODULE)
def test_no_file_imports_the_module(package: str) -> None:
    files = sorted((PACKAGE / package).rglob("*.py"))
    assert files, f"no Python files under {PACKAGE / package}"
    offenders = {str(f.relative_to(PACKAGE)): module_imports(f.read_text()) for f in files}
    assert {f: found for f, found in offenders.items() if found} == {}


def test_importing_callbacks_and_eval_does_not_load_the_module() -> None:
    names = [
        ".".join(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        for package in NO_MODULE
        for f in sorted((PACKAGE / package).rglob("*.py"))
        if f.name != "__main__.py"
    ]
    code = (
        f"import importlib, sys\nfor name in {names!r}:\n    importlib.import_module(name)\n"
        "print('alarm_pl.module' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
