"""Reward-model training: the Bradley–Terry loss by hand, rewards read at each text's last real token under mixed
lengths and padding, learning on a separable preference set through the real CLI, and the export that
RewardModelScorer loads (template included), full and LoRA."""

from __future__ import annotations

import csv
import glob
import json
import math
import random
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2ForSequenceClassification

from alarm_pl.cli import cli_main
from alarm_pl.config import RewardModelConfig
from alarm_pl.data.preferences import PreferenceBatch, PreferencePair, write_preferences
from alarm_pl.data.tiny_mt import PROMPT_PREFIX, unique_pairs
from alarm_pl.models.templates import TEMPLATE_KEY
from alarm_pl.reward_training import RewardModelModule, bradley_terry_loss, pairwise_accuracy
from alarm_pl.rewards.holistic import RewardModelScorer
from tests.test_reward_model import reference_score, scoring_input, tiny_tokenizer

TEMPLATE = "Source: {prompt} => {response}"


def test_bradley_terry_loss_and_accuracy_by_hand():
    chosen = torch.tensor([1.0, 0.0, -2.0], requires_grad=True)
    rejected = torch.tensor([0.0, 0.0, 1.0])
    # −log σ(Δ) = log(1 + e^−Δ): Δ = 1 → 0.313262, Δ = 0 → 0.693147, Δ = −3 → log(1 + e^3) = 3.048587
    loss = bradley_terry_loss(chosen, rejected)
    assert loss.item() == pytest.approx((0.313262 + 0.693147 + 3.048587) / 3, abs=1e-6)
    loss.backward()
    # ∂/∂chosen_i = −(1 − σ(Δ_i)) / 3: σ(1) = 0.731059, σ(0) = 0.5, σ(−3) = 0.047426
    torch.testing.assert_close(chosen.grad, torch.tensor([-0.089647, -0.166667, -0.317525]), atol=1e-6, rtol=0)
    assert float(pairwise_accuracy(chosen, rejected)) == pytest.approx(1 / 3)  # the tie (0 vs 0) counts as wrong
    big = bradley_terry_loss(torch.tensor([200.0]), torch.tensor([-200.0]))  # stable at large margins
    assert math.isfinite(float(big)) and float(big) == pytest.approx(0.0, abs=1e-6)


def _save_model(path: Path, dropout: float = 0.1, seed: int = 0) -> None:
    """A 2-layer GPT-2 sequence classifier with one output and dropout on (like the real ones) plus a tokenizer whose
    pad token is also its EOS (GPT-2's convention)."""
    tok = tiny_tokenizer(pad=False)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tok),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=128,
        num_labels=1,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    GPT2ForSequenceClassification(config).save_pretrained(path)
    tok.save_pretrained(path)


def _module(path: Path, **kwargs) -> RewardModelModule:
    module = RewardModelModule(
        RewardModelConfig(model_name_or_path=str(path), **kwargs), template=TEMPLATE, max_length=64
    )
    module.load()
    return module


def test_rewards_are_read_at_each_texts_last_real_token(tmp_path):
    _save_model(tmp_path)
    module = _module(tmp_path)
    module.model.eval()
    eos = module.tokenizer.eos_token
    prompts = ["hi", "where is the cat", "a"]
    chosen = ["a", "the cat sat on the mat and the dog ran in the park", "dog ran " + eos]  # a real EOS = the pad id
    rejected = ["the mat.", "hello there", "x"]
    with torch.no_grad():
        got_c, got_r = module.pair_rewards(PreferenceBatch(prompts, chosen, rejected))
        base = module.model
        want_c = torch.tensor(
            [
                reference_score(base, module.tokenizer, TEMPLATE.format(prompt=p, response=r))
                for p, r in zip(prompts, chosen)
            ]
        )
        want_r = torch.tensor(
            [
                reference_score(base, module.tokenizer, TEMPLATE.format(prompt=p, response=r))
                for p, r in zip(prompts, rejected)
            ]
        )
    torch.testing.assert_close(got_c, want_c, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_r, want_r, atol=1e-5, rtol=1e-5)
    assert len(set(got_c.tolist())) == 3  # the rows differ, so a shifted read would be seen
    assert base.config.pad_token_id == module.tokenizer.pad_token_id  # restored after the forward


def _separable_pairs(n: int, seed: int) -> list[PreferencePair]:
    """Chosen: the tiny task's reference; rejected: the same with its end cut off (no final punctuation). Visible
    only at the end of the text, where the reward is read."""
    rng = random.Random(seed)
    pairs = []
    for es, en in unique_pairs(n, "rl", seed):
        words = en[:-1].split()
        pairs.append(PreferencePair(PROMPT_PREFIX + es, en, " ".join(words[: max(1, len(words) - rng.randint(1, 2))])))
    return pairs


def _val_accuracy(tmp_path) -> list[float]:
    rows = [r for path in glob.glob(str(tmp_path / "logs" / "*" / "metrics.csv")) for r in csv.DictReader(open(path))]
    return [float(r["val/accuracy"]) for r in rows if r.get("val/accuracy")]


def test_learning_through_the_cli_and_export_round_trip(tmp_path):
    model_dir = tmp_path / "start"
    _save_model(model_dir)
    for split, (n, seed) in {"train": (256, 11), "val": (64, 12), "test": (64, 13)}.items():
        write_preferences(tmp_path / f"{split}.jsonl", _separable_pairs(n, seed))
    export = tmp_path / "export"
    args = [
        "--config",
        str(Path(__file__).parents[1] / "configs" / "tiny_rm.yaml"),
        "--model.reward_model.model_name_or_path",
        str(model_dir),
        "--model.template",
        TEMPLATE,
        "--data",
        "alarm_pl.data.preferences.PreferenceDataModule",
        "--data.train_file",
        str(tmp_path / "train.jsonl"),
        "--data.val_file",
        str(tmp_path / "val.jsonl"),
        "--data.test_file",
        str(tmp_path / "test.jsonl"),
        "--data.batch_size",
        "16",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
    ]
    before = cli_main(["validate", *args]).trainer.callback_metrics["val/accuracy"]
    assert before < 0.5  # the untrained head (seed 0) prefers the cut-off texts
    cli = cli_main(
        [
            "fit",
            *args,
            "--trainer.max_epochs",
            "3",
            "--trainer.val_check_interval",
            "1.0",  # once an epoch
            "--export_dir",
            str(export),
            "--test_after_fit",
            "true",
        ]
    )
    assert _val_accuracy(tmp_path)[-1] > 0.9  # held-out pairwise accuracy rises
    assert cli.trainer.callback_metrics["test/accuracy"] > 0.9

    module = cli.model.eval()
    assert json.loads((export / "config.json").read_text())[TEMPLATE_KEY] == TEMPLATE
    scorer = RewardModelScorer(str(export))  # no template given: the one it was trained with
    scorer.setup(torch.device("cpu"))
    assert scorer.model.template == TEMPLATE
    prompts, responses = ["hola", "el perro come"], ["hello.", "the dog eats"]
    with torch.no_grad():
        expected = module.rewards(prompts, responses)
    score = scorer.score(scoring_input(prompts, responses, [2, 3]))
    torch.testing.assert_close(score.metric, expected, atol=1e-5, rtol=1e-5)


def test_lora_training_exports_a_merged_model_the_scorer_reads(tmp_path):
    _save_model(tmp_path / "start")
    module = _module(tmp_path / "start", lora_r=4, lora_alpha=8, lora_dropout=0.0, lora_target_modules=["c_attn"])
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "score" in n for n in trainable)  # the adapter and the full head
    batch = PreferenceBatch(["a", "b"], ["the cat sat.", "dog"], ["the", "a dog ran in the park"])
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.5)
    module.model.train()
    for _ in range(3):
        optimizer.zero_grad()
        bradley_terry_loss(*module.pair_rewards(batch)).backward()
        optimizer.step()
    module.model.eval()
    module.export(str(tmp_path / "export"))
    scorer = RewardModelScorer(str(tmp_path / "export"))
    scorer.setup(torch.device("cpu"))
    with torch.no_grad():
        expected = module.rewards(batch.prompts, batch.chosen)
    got = scorer.score(scoring_input(batch.prompts, batch.chosen, [3, 1])).metric
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert not any("lora" in key for key in scorer.model.model.state_dict())  # merged: a plain transformers model


def test_a_configured_template_overrides_the_saved_one_with_a_warning(tmp_path, caplog):
    _save_model(tmp_path / "start")
    _module(tmp_path / "start").export(str(tmp_path / "export"))
    scorer = RewardModelScorer(str(tmp_path / "export"), template="{prompt}|{response}")
    scorer.setup(torch.device("cpu"))
    assert scorer.model.template == "{prompt}|{response}"
    assert "trained with the template" in caplog.text


def test_template_without_response_is_refused_at_construction():
    with pytest.raises(ValueError, match=r"\{response\}"):
        RewardModelModule(template="{prompt} only")
