"""The command line: ``python -m alarm_pl fit|validate|test --config configs/X.yaml`` (LightningCLI).

The LightningModule is chosen by the config's ``model.class_path`` (``alarm_pl.module.ALaRMModule`` for PPO with
hierarchical rewards, ``alarm_pl.sft.SFTModule`` for supervised fine-tuning) and the DataModule by ``data.class_path``. Every argument is typed and documented:
``fit --model.help alarm_pl.module.ALaRMModule`` lists a module's arguments, ``--print_config`` shows the resolved
configuration, and dotted overrides reach ``init_args`` directly (``--model.ppo.clip_range 0.1``).

The optimizer is an argument of the module (``model.optimizer``), built over the trainable parameters only;
LightningCLI's own top-level ``--optimizer``/``--lr_scheduler`` are switched off, because an optimizer built over
every parameter of a LoRA policy would have nothing to train (``--optimizer`` is refused with a pointer to
``--model.optimizer``).

What a person at the terminal sees lives beside this file: the parser (no abbreviations, ``null`` at every depth,
short errors) in ``cli_parser.py``, filtered library noise and one-message failures in ``console.py``.
"""

from __future__ import annotations

import os
from typing import Optional

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningCLI

from alarm_pl.console import quiet_library_noise, run_command


class ALaRMCLI(LightningCLI):
    """LightningCLI with the LightningModule and the LightningDataModule both chosen by ``class_path``."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--export_dir", type=Optional[str], default=None,
                            help="After fit: export the trained policy here with the module's export(): PPO writes "
                                 "the peft adapter (+ value head, tokenizer), SFT a full model (LoRA merged) that "
                                 "PPO loads as model.policy.model_name_or_path.")
        parser.add_argument("--export_merged", type=bool, default=False,
                            help="PPO, with --export_dir: also write the merged full model under <export_dir>/merged "
                                 "(SFT exports are always merged).")
        parser.add_argument("--test_after_fit", type=bool, default=False,
                            help="After fit: run the test loop on the trained weights in the same process (the test "
                                 "generation file and test/* metrics), as `test --ckpt_path` would on the last "
                                 "checkpoint.")


def build_cli(cli_class: type[LightningCLI], args: Optional[list[str]], run: bool,
              prog: str = "python -m alarm_pl") -> LightningCLI:
    """Parse ``args`` and build the module, data module and trainer with one of the project's CLIs (training, or
    calibration in ``alarm_pl/calibrate.py``): one parser setup for every command; ``prog`` names the command in
    usage and error messages."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from jsonargparse import set_parsing_settings

    from alarm_pl.cli_parser import ProjectArgumentParser

    quiet_library_noise()
    set_parsing_settings(docstring_parse_attribute_docstrings=True)  # dataclass field docstrings become --help
    return cli_class(pl.LightningModule, datamodule_class=None, subclass_mode_model=True, subclass_mode_data=True,
                     args=args, run=run, auto_configure_optimizers=False, save_config_kwargs={"overwrite": True},
                     parser_class=ProjectArgumentParser, parser_kwargs={"prog": prog})


def cli_main(args: Optional[list[str]] = None, run: bool = True) -> ALaRMCLI:
    """Entry point; ``args`` lets tests run the CLI in-process."""
    cli = build_cli(ALaRMCLI, args, run)
    if run and cli.subcommand == "fit":
        export_dir = cli.config["fit"].get("export_dir")
        if export_dir and cli.trainer.is_global_zero:
            cli.model.export(export_dir, merged=cli.config["fit"].get("export_merged", False))
        if cli.config["fit"].get("test_after_fit"):
            cli.trainer.test(cli.model, datamodule=cli.datamodule)
    return cli


def main() -> None:
    """``python -m alarm_pl`` and the ``alarm-pl`` script: ``cli_main`` with library noise filtered and a failure
    reported as one message on the last line (``ALARM_PL_DEBUG=1`` for the traceback)."""
    run_command(cli_main)
