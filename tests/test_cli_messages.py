"""What a person at the terminal sees when something is wrong: ``null`` reaches every depth, a misspelled option is
named with the closest real one on the last line (no usage dump, no abbreviation), ``--optimizer`` points to
``--model.optimizer``, a failed command ends with one message and what to do, and known library noise is filtered
narrowly."""

import logging
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from alarm_pl import console
from alarm_pl.cli import cli_main, main
from alarm_pl.cli_parser import explain_parse_error

CONFIGS = Path(__file__).parents[1] / "configs"
TINY = ["--config", str(CONFIGS / "tiny_mt.yaml")]


@pytest.fixture(autouse=True)
def _command_line_of_its_own(monkeypatch):
    monkeypatch.setattr("sys.argv", ["alarm_pl"])  # LightningCLI warns when pytest's arguments are there too


def test_null_reaches_optional_fields_at_every_depth():
    cli = cli_main(
        [
            *TINY,
            "--model.ppo.target_kl",
            "null",  # a dataclass field below the class_path-chosen module
            "--model.policy.lora_target_modules=null",  # a list, with '='
            "--model.holistic.init_args.normalizer",
            "null",  # a class inside the module's class
            "--data.eval_batch_size",
            "8",
            "--data.init_args.eval_batch_size",
            "null",  # the later wins
            "--model.max_prompt_length",
            "None",
        ],
        run=False,
    )
    module, config = cli.model, yaml.safe_load((CONFIGS / "tiny_mt.yaml").read_text())
    ppo, policy = config["model"]["init_args"]["ppo"], config["model"]["init_args"]["policy"]
    batch_size = config["data"]["init_args"]["batch_size"]
    assert ppo["target_kl"] is not None and policy["lora_target_modules"]  # the overrides change something
    assert module.ppo_config.target_kl is None and module.policy.config.lora_target_modules is None
    assert module.scoring.holistic_scorer.normalizer is None and module.max_prompt_length is None
    assert cli.config.data.init_args.eval_batch_size is None and cli.datamodule.eval_batch_size == batch_size
    # every other value of those groups keeps the config's (the override merges, it does not replace the group)
    assert module.ppo_config.ppo_epochs == ppo["ppo_epochs"] and module.ppo_config.lam == ppo["lam"]
    assert module.policy.config.lora_r == policy["lora_r"] and cli.datamodule.batch_size == batch_size
    assert module.scoring.holistic_scorer.metric == config["model"]["init_args"]["holistic"]["init_args"]["metric"]


def _parse_error(args, capsys) -> list[str]:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args)  # fails while parsing: nothing runs
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("tip: ") and err[-1].startswith("error: ")  # no 110-line usage
    return err


@pytest.mark.parametrize(
    "override, expected",
    [
        (
            ["--model.ppo.clip_ragne", "0.3"],
            "model.ppo.clip_ragne: no such option of alarm_pl.module.ALaRMModule; did you mean model.ppo.clip_range?",
        ),
        # jsonargparse 4 would expand this prefix to clip_range silently; we refuse abbreviations
        (["--model.ppo.clip_rang", "0.3"], "did you mean model.ppo.clip_range?"),
        (["--trainer.max_step", "5"], "trainer.max_step: no such option; did you mean trainer.max_steps?"),
        (
            ["--data.batch_sz", "8"],
            "data.batch_sz: no such option of alarm_pl.data.prompts.TinyMTDataModule; did you mean data.batch_size?",
        ),
        (["--model.holistic.init_args.metrc", "bleu"], "did you mean model.holistic.metric?"),
        (["--model.reward.strategy", "hierarchcal"], "model.reward.strategy: Expected a typing.Literal["),
        (["--model.reward.strategy", "hierarchcal"], "(did you mean hierarchical?)"),
        (["--model.ppo.clip_range", "abc"], "model.ppo.clip_range: Expected a <class 'float'>. Got value: abc"),
    ],
)
def test_a_bad_option_is_named_on_the_last_line_with_the_closest_real_one(override, expected, capsys):
    err = _parse_error(["fit", *TINY, *override], capsys)
    assert expected in err[-1]


def test_a_misspelled_key_in_a_config_file_is_named_too(tmp_path, capsys):
    config = yaml.safe_load((CONFIGS / "tiny_mt.yaml").read_text())
    config["model"]["init_args"]["reward"]["holistic_wieght"] = config["model"]["init_args"]["reward"].pop(
        "holistic_weight"
    )
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(config))
    err = _parse_error(["fit", "--config", str(path)], capsys)
    assert "model.reward.holistic_wieght: no such option" in err[-1]
    assert "did you mean model.reward.holistic_weight?" in err[-1]


def test_top_level_optimizer_is_refused_with_a_pointer_to_the_module_optimizer(capsys):
    err = _parse_error(["fit", *TINY, "--optimizer", "AdamW", "--optimizer.lr", "1e-4"], capsys)
    assert err[-1].startswith("error: --optimizer is not an option here: the optimizer is an argument of the module")
    assert "--model.optimizer torch.optim.AdamW --model.optimizer.lr 1e-4" in err[-1]
    with pytest.raises(SystemExit):
        cli_main(["fit", "--help"])
    assert "--optimizer " not in capsys.readouterr().out  # not offered by --help either
    cli = cli_main([*TINY, "--model.optimizer", "torch.optim.SGD", "--model.optimizer.lr", "0.5"], run=False)
    cli.model.policy.load()
    optimizer = cli.model.configure_optimizers()  # what works instead: over the trainable parameters only
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["lr"] == 0.5
    trainable = {id(p) for p in cli.model.parameters() if p.requires_grad}
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == trainable != set()


def test_debug_shows_the_parsers_full_report(capsys, monkeypatch):
    monkeypatch.setenv(console.DEBUG_ENV, "1")
    with pytest.raises(SystemExit):
        cli_main(["fit", *TINY, "--model.ppo.clip_ragne", "0.3"])
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m alarm_pl [options] fit") and "NestedArg(key='ppo.clip_ragne'" in err


def test_unknown_shapes_of_messages_are_kept():
    assert explain_parse_error("something else went wrong") == "something else went wrong"


def test_a_failed_command_ends_with_its_message_and_what_to_do(capsys, monkeypatch):
    args = ["fit", "--config", str(CONFIGS / "mt.yaml"), "--trainer.logger", "false"]
    if torch.cuda.is_available():  # no GPU failure to show; the hub failure below is the same path
        pytest.skip("this machine has a GPU")
    monkeypatch.setattr("sys.argv", ["alarm_pl", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err) and len(err) == 3
    assert err[0] == (
        "alarm_pl: the command failed with MisconfigurationException (set ALARM_PL_DEBUG=1 for the traceback)"
    )
    assert err[1] == "error: No supported gpu backend found!"
    assert err[2].startswith("what to do: this configuration asks for a GPU") and "configs/smoke/mt_cpu.yaml" in err[2]


def test_a_hub_failure_is_one_message_and_the_traceback_only_on_request(capsys, monkeypatch):
    args = [
        "fit",
        "--config",
        str(CONFIGS / "mt.yaml"),
        "--trainer.accelerator",
        "cpu",
        "--trainer.precision",
        "32-true",
        "--trainer.logger",
        "false",
        "--trainer.enable_checkpointing",
        "false",
    ]
    monkeypatch.setattr("sys.argv", ["alarm_pl", *args])
    with pytest.raises(SystemExit):
        main()
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert err[-2].startswith(
        "error: data.init_args.dataset_name: data set 'opus/europarl' (en-es) is not in the local cache"
    )  # the project's own message, naming the config key; the data is read before the policy is loaded
    assert err[-1].startswith("what to do: without the hub, the CPU smoke overlays (configs/smoke/*_cpu.yaml)")
    monkeypatch.setenv(console.DEBUG_ENV, "1")
    from alarm_pl.models.loading import HubUnavailableError

    with pytest.raises(HubUnavailableError):
        main()


def test_known_library_noise_is_filtered_narrowly():
    console.quiet_library_noise()
    for name, prefix, _ in console.LOG_NOISE:
        logger = logging.getLogger(name)
        noise = logger.makeRecord(name, logging.INFO, __file__, 1, prefix + " something", None, None)
        other = logger.makeRecord(name, logging.WARNING, __file__, 1, "a real problem", None, None)
        assert not logger.filter(noise) and logger.filter(other)
    for name, prefix, _ in console.LOG_ONCE:  # shown the first time only
        logger = logging.getLogger(name)
        records = [logger.makeRecord(name, logging.WARNING, __file__, 1, prefix + " x", None, None) for _ in range(3)]
        filters = [f for f in logger.filters if getattr(f, "prefix", None) == prefix]
        filters[0].seen = False  # as in a fresh process
        assert [bool(logger.filter(r)) for r in records] == [True, False, False]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # what pytest does; our filters must still drop the known noise
        console.quiet_library_noise()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning)
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning)
        warnings.warn("Model has `tie_word_embeddings=True` and a tied layer is part of the adapter", UserWarning)
    assert [str(w.message) for w in caught] == [
        "Model has `tie_word_embeddings=True` and a tied layer is part of the adapter"
    ]  # not noise: kept
