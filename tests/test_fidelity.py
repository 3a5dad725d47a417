"""docs/FIDELITY.md, row by row: configs/mt.yaml and configs/qa.yaml, parsed by the real CLI, hold the paper's settings.

Each value below is the authors' (halfrot/ALaRM ``MT/train_ppo.py``, ``long-form-QA/train_ppo.py``, README commands,
their trl 0.5 fork; FineGrainedRLHF for the QA reward models) unless the table gives a reason for a difference. The
configs are instantiated on the CPU without loading any model (``run=False``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from alarm_pl.cli import cli_main
from alarm_pl.data.tasks import MT_PROMPT
from alarm_pl.rewards.aspects.grammar import GrammarScorer
from alarm_pl.rewards.aspects.language import LanguageConfidenceScorer
from alarm_pl.rewards.aspects.model_aspects import SequenceRegressionAspect, TokenClassificationAspect
from alarm_pl.rewards.aspects.readability import ReadabilityScorer
from alarm_pl.rewards.normalize import FixedNormalizer

CONFIGS = Path(__file__).parents[1] / "configs"


def load(name: str):
    """(cli, raw YAML) of configs/<name>.yaml; the CLI is told to use the CPU, so precision is read from the YAML."""
    cli = cli_main(
        ["--config", str(CONFIGS / f"{name}.yaml"), "--trainer.accelerator", "cpu", "--trainer.precision", "32-true"],
        run=False,
    )
    return cli, yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


@pytest.fixture(scope="module")
def mt():
    return load("mt")


@pytest.fixture(scope="module")
def qa():
    return load("qa")


def aspects(cli) -> dict:
    return {a.name: a for a in cli.model.scoring.aspect_scorers}


def normalizer_constants(normalizer) -> tuple[float, float, float, float]:
    assert isinstance(normalizer, FixedNormalizer)
    return normalizer.mean.item(), normalizer.std.item(), normalizer.scale, normalizer.bias


# ------------------------------------------------------------------------------------------------ both tasks
@pytest.mark.parametrize("task, lr", [("mt", 5e-4), ("qa", 2e-4)])
def test_shared_ppo_settings(task, lr, request):
    cli, raw = request.getfixturevalue(task)
    module = cli.model
    ppo = module.ppo_config
    assert (ppo.ppo_epochs, ppo.num_minibatches, ppo.gradient_accumulation_steps) == (4, 2, 2)
    assert (ppo.clip_range, ppo.value_clip_range, ppo.vf_coef, ppo.gamma, ppo.lam) == (0.2, 0.2, 0.1, 1.0, 0.95)
    assert ppo.advantage_normalization == "whiten" and not ppo.whiten_rewards and ppo.entropy_coef == 0.0
    assert (ppo.target_kl, ppo.early_stop, ppo.max_grad_norm, ppo.kl_estimator) == (0.1, "last_minibatch", None, "k1")
    kl = module.kl_controller
    assert (type(kl).__name__, kl.value, kl.target, kl.horizon) == ("AdaptiveKLController", 0.2, 6.0, 10000)
    optimizer = module.optimizer_factory([torch.nn.Parameter(torch.zeros(1))])
    assert type(optimizer) is torch.optim.Adam  # trl 0.5's Adam: no weight decay, constant lr
    assert optimizer.defaults["lr"] == lr and optimizer.defaults["weight_decay"] == 0.0
    assert optimizer.defaults["betas"] == (0.9, 0.999) and optimizer.defaults["eps"] == 1e-8
    assert module.scheduler_factory is None
    policy = module.policy.config
    assert (policy.lora_r, policy.lora_alpha, policy.lora_dropout, policy.lora_target_modules) == (16, 32, 0.05, None)
    assert policy.reference == "disable_adapter" and policy.dtype == "float32"
    assert raw["trainer"]["precision"] == "bf16-mixed" and raw["seed_everything"] == 42
    generation = module.generation_config
    assert (generation.do_sample, generation.top_k, generation.top_p, generation.temperature) == (True, 0, 1.0, 1.0)
    assert not generation.eval_do_sample and generation.min_new_tokens == 0
    reward = module.reward_config
    assert (reward.strategy, reward.degenerate_max_tokens, reward.degenerate_holistic) == ("hierarchical", 1, -10.0)
    holistic = module.scoring.holistic_scorer
    assert holistic.model_name_or_path == "openbmb/UltraRM-13b" and holistic.dtype == "bfloat16"
    assert holistic.template == "Human: {prompt}\nAssistant: {response}"
    assert holistic.key_mapping == {"^regression_head": "score"}
    assert all(a.shaping == "sigmoid" and a.weight == 1.0 for a in module.scoring.aspect_scorers)
    assert module.selection_config.mode == "fixed"


# ------------------------------------------------------------------------------------------------ MT
def test_mt_policy_data_and_schedule(mt):
    cli, _ = mt
    module, data, trainer = cli.model, cli.datamodule, cli.trainer
    assert module.policy.config.model_name_or_path == "halfrot/sft-mt5-base"
    assert module.max_prompt_length == 128 and module.generation_config.max_new_tokens == 128
    assert (trainer.max_steps, trainer.val_check_interval) == (50, 5)
    assert (data.dataset_name, data.dataset_config, data.dataset_path, data.es_file) == (
        "opus/europarl",
        "en-es",
        None,
        None,
    )
    assert (data.num_pairs, data.seed, data.batch_size) == (100_000, 42, 32)
    assert data.limits == {"train": None, "val": 2000, "test": None}  # the whole test split
    assert MT_PROMPT.format(source="Hola.") == "translate Spanish to English: Hola."


def test_mt_rewards(mt):
    cli, _ = mt
    module = cli.model
    assert (module.reward_config.threshold, module.reward_config.holistic_weight) == (0.5, 3.0)
    holistic = module.scoring.holistic_scorer
    assert holistic.max_length == 300
    assert normalizer_constants(holistic.normalizer) == (-2.34417221913525, 2.946283030347152, 1.0, 0.0)
    found = aspects(cli)
    assert list(found) == ["grammar", "readability", "language"]
    grammar = found["grammar"]
    assert isinstance(grammar, GrammarScorer)
    assert (grammar.language, grammar.correct_value, grammar.error_value) == ("en-US", 0.0, -1.0)
    readability = found["readability"]
    assert isinstance(readability, ReadabilityScorer) and readability.higher_is_better  # the paper's sign
    assert normalizer_constants(readability.normalizer) == (11.19907041598879, 6.04405504045225, 1.0, 0.0)
    language = found["language"]
    assert isinstance(language, LanguageConfidenceScorer) and language.target == "english"
    assert module.selection_config.aspects == ["grammar"]


# ------------------------------------------------------------------------------------------------ QA
def test_qa_policy_data_and_schedule(qa):
    cli, _ = qa
    module, data, trainer = cli.model, cli.datamodule, cli.trainer
    assert module.max_prompt_length == 1024 and module.generation_config.max_new_tokens == 200
    assert (trainer.max_epochs, trainer.max_steps, trainer.val_check_interval) == (2, -1, 10)
    assert data.batch_size == 8
    assert data.limits == {"train": None, "val": None, "test": None}  # whole dev (500) and test (948) splits


def test_qa_rewards(qa):
    cli, _ = qa
    module = cli.model
    assert (module.reward_config.threshold, module.reward_config.holistic_weight) == (0.6, 5.0)
    holistic = module.scoring.holistic_scorer
    assert holistic.max_length == 1230
    assert normalizer_constants(holistic.normalizer) == (-4.896130742253484, 3.0595760500526468, 1.0, 0.0)
    found = aspects(cli)
    assert list(found) == ["factuality", "relevance", "completeness"]
    fact, rel, comp = found["factuality"], found["relevance"], found["completeness"]
    assert isinstance(fact, TokenClassificationAspect) and isinstance(rel, TokenClassificationAspect)
    # FineGrainedRLHF label ids: factuality [F-ERR, Ignore, O], relevance [Ignore, NF-ERR, O]
    assert (fact.positive_label, fact.negative_label, fact.ignore_labels) == (2, 0, [1])
    assert (rel.positive_label, rel.negative_label, rel.ignore_labels) == (2, 1, [0])
    assert (fact.unit, fact.positive_value, fact.negative_value) == ("sentence", 0.5, -0.5)
    assert (rel.unit, rel.min_words, rel.positive_value, rel.negative_value) == ("subsentence", 5, 0.3, -0.3)
    assert fact.marker == rel.marker == "</s>"
    assert fact.template == "{prompt} answer: {response}"
    assert rel.template == "question: {question} answer: {response}"
    assert fact.empty_metric == rel.empty_metric == 0.5
    assert isinstance(comp, SequenceRegressionAspect) and comp.collapse_prompt_whitespace
    assert comp.template == "{prompt} answer: {response}"
    assert normalizer_constants(comp.normalizer) == (-0.44677690555995353, 8.301160619054132, 0.3, 0.0)
    assert fact.max_length == rel.max_length == comp.max_length == 4096  # Longformer-base-4096
    assert module.selection_config.aspects == ["factuality"]


def test_headers_claim_no_unmeasured_figures():
    for name in ("mt", "qa"):
        header = [line for line in (CONFIGS / f"{name}.yaml").read_text().splitlines() if line.startswith("#")]
        text = " ".join(header)
        assert "A100" not in text and "hours" not in text, f"{name}.yaml header cites a time nobody measured"
        assert "not measured" in text
