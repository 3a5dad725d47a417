"""The command line: ``python -m alarm_pl fit|validate|test --config configs/X.yaml`` (LightningCLI).

Every argument of ``ALaRMModule`` and of the chosen DataModule is typed and documented; ``--help`` lists them and
``--print_config`` shows the resolved configuration. Components are chosen by ``class_path``.
"""

from __future__ import annotations

import os
from typing import Optional

from lightning.pytorch.cli import LightningCLI

from alarm_pl.module import ALaRMModule


class ALaRMCLI(LightningCLI):
    """LightningCLI with the project's module fixed and any LightningDataModule selectable by ``class_path``."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--export_dir", type=Optional[str], default=None,
                            help="After fit: write the trained peft adapter (+ value head, tokenizer) here.")
        parser.add_argument("--export_merged", type=bool, default=False,
                            help="With --export_dir: also write the merged full model under <export_dir>/merged.")


def cli_main(args: Optional[list[str]] = None, run: bool = True) -> ALaRMCLI:
    """Entry point; ``args`` lets tests run the CLI in-process."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from jsonargparse import set_parsing_settings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)  # dataclass field docstrings become --help
    cli = ALaRMCLI(ALaRMModule, datamodule_class=None, subclass_mode_data=True, args=args, run=run,
                   save_config_kwargs={"overwrite": True}, parser_kwargs={"parser_mode": "omegaconf"}
                   if _has_omegaconf() else None)
    if run and cli.subcommand == "fit":
        export_dir = cli.config["fit"].get("export_dir")
        if export_dir and cli.trainer.is_global_zero:
            cli.model.export(export_dir, merged=cli.config["fit"].get("export_merged", False))
    return cli


def _has_omegaconf() -> bool:
    try:
        import omegaconf  # noqa: F401
    except ImportError:
        return False
    return True
