"""The PPO update on a policy shaped like the real ones: T5 checkpoints ship dropout 0.1 and LoRA has its own.

Every pass of a rollout and of its PPO epochs runs without dropout, so before the first update the ratio is exactly 1:
with a learning rate of 0 nothing may ever look like a policy change (approx_kl and clipfrac exactly 0, no KL early
stop). The critic warm-up trains the value head alone: the policy's weights do not move.
"""

import lightning.pytorch as pl
import pytest
import torch

from alarm_pl.config import GenerationConfig, PolicyConfig, PPOConfig, RewardConfig, SelectionConfig
from alarm_pl.data.prompts import TinyMTDataModule
from alarm_pl.models.surgery import disable_dropout
from alarm_pl.module import ALaRMModule
from alarm_pl.ppo.kl import FixedKLController
from tests.helpers import KeywordScorer


@pytest.fixture(scope="module")
def dropout_policy(tmp_path_factory):
    """tiny:mt-seq2seq re-saved with T5's real dropout_rate of 0.1."""
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    from alarm_pl.assets.tiny import ensure_tiny_asset

    source = ensure_tiny_asset("mt-seq2seq")
    target = tmp_path_factory.mktemp("t5-dropout")
    T5ForConditionalGeneration.from_pretrained(source, dropout_rate=0.1).save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return str(target)


def _module(path, lr, gradient_checkpointing=False, critic_warmup_rollouts=0, old_logprobs_from="auto"):
    return ALaRMModule(
        holistic=KeywordScorer(["the"]),
        policy=PolicyConfig(
            model_name_or_path=path,
            lora_r=8,
            lora_alpha=16,
            lora_dropout=0.1,
            lora_target_modules=["q", "v"],
            gradient_checkpointing=gradient_checkpointing,
        ),
        generation=GenerationConfig(max_new_tokens=12, old_logprobs_from=old_logprobs_from),
        reward=RewardConfig(strategy="holistic_only", holistic_weight=3.0),
        selection=SelectionConfig(mode="fixed", aspects=[]),
        ppo=PPOConfig(ppo_epochs=4, num_minibatches=2, target_kl=0.1, critic_warmup_rollouts=critic_warmup_rollouts),
        kl_controller=FixedKLController(0.05),
        optimizer=lambda params: torch.optim.SGD(params, lr=lr),
    )


def _fit(module, rollouts):
    pl.seed_everything(0)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=rollouts,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, TinyMTDataModule(num_train=8 * rollouts, batch_size=8, seed=5))


def test_the_checkpoint_has_dropout_and_the_ppo_policy_has_none(dropout_policy):
    """Guards the test below: the checkpoint's own model differs between two passes in training mode, so a ratio
    of exactly 1 is not a given; the PPO policy built from it does not, in training mode as in eval mode."""
    from transformers import T5ForConditionalGeneration

    module = _module(dropout_policy, lr=0.0)
    module.policy.load()
    query, query_mask = module.policy.tokenize_prompts(
        ["translate Spanish to English: El perro come pan."], 32, torch.device("cpu")
    )
    response, response_mask = torch.tensor([[5, 6, 7, 1]]), torch.ones(1, 4, dtype=torch.bool)
    raw = T5ForConditionalGeneration.from_pretrained(dropout_policy).train()
    decoder_in = torch.tensor([[0, 5, 6, 7]])
    assert not torch.equal(
        raw(input_ids=query, decoder_input_ids=decoder_in).logits,
        raw(input_ids=query, decoder_input_ids=decoder_in).logits,
    )
    module.policy.train()
    first = module.policy(query, query_mask, response, response_mask).logprobs
    assert torch.equal(first, module.policy(query, query_mask, response, response_mask).logprobs)


def _tiny(config_class, model_class, **kwargs):
    torch.manual_seed(0)
    return model_class(config_class(vocab_size=64, **kwargs)).train()


@pytest.mark.parametrize("family", ["gpt2", "llama", "bart", "t5"])
def test_disable_dropout_covers_module_and_functional_dropout(family):
    """Every family's dropout — ``nn.Dropout`` modules and the floats handed to functional dropout — is 0."""
    from transformers import (
        BartConfig,
        BartForConditionalGeneration,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        T5Config,
        T5ForConditionalGeneration,
    )

    models = {
        "gpt2": lambda: _tiny(
            GPT2Config, GPT2LMHeadModel, n_embd=16, n_layer=1, n_head=2, resid_pdrop=0.3, embd_pdrop=0.3, attn_pdrop=0.3
        ),
        "llama": lambda: _tiny(
            LlamaConfig,
            LlamaForCausalLM,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            attention_dropout=0.3,
        ),
        "bart": lambda: _tiny(
            BartConfig,
            BartForConditionalGeneration,
            d_model=16,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=32,
            decoder_ffn_dim=32,
            dropout=0.3,
            attention_dropout=0.3,
            activation_dropout=0.3,
        ),
        "t5": lambda: _tiny(
            T5Config,
            T5ForConditionalGeneration,
            d_model=16,
            d_ff=32,
            d_kv=8,
            num_layers=1,
            num_heads=2,
            dropout_rate=0.3,
        ),
    }
    model = models[family]()
    ids = torch.tensor([[3, 4, 5, 6, 7, 8]])
    inputs = {"input_ids": ids, "decoder_input_ids": ids} if family in ("bart", "t5") else {"input_ids": ids}
    assert not torch.equal(model(**inputs).logits, model(**inputs).logits)  # dropout is really there
    disable_dropout(model)
    assert torch.equal(model(**inputs).logits, model(**inputs).logits)


@pytest.mark.parametrize("old_logprobs_from", ["forward", "generation"])
@pytest.mark.parametrize("gradient_checkpointing", [False, True])
def test_ratio_is_exactly_one_without_an_update(dropout_policy, monkeypatch, gradient_checkpointing, old_logprobs_from):
    module = _module(
        dropout_policy, lr=0.0, gradient_checkpointing=gradient_checkpointing, old_logprobs_from=old_logprobs_from
    )
    minibatches, summaries, checkpointed = [], [], []
    backward = ALaRMModule._minibatch_backward

    def recording_backward(self, *args):
        stats = backward(self, *args)
        minibatches.append(stats)
        return stats

    monkeypatch.setattr(ALaRMModule, "_minibatch_backward", recording_backward)
    update = ALaRMModule.ppo_update
    monkeypatch.setattr(
        ALaRMModule, "ppo_update", lambda self, rollout: summaries.append(update(self, rollout)) or summaries[-1]
    )
    if gradient_checkpointing:  # count the layers that really recompute, so the flag is shown to take effect
        import torch.utils.checkpoint as checkpoint
        import transformers.modeling_utils as modeling_utils

        original = checkpoint.checkpoint
        counting = lambda *a, **k: checkpointed.append(1) or original(*a, **k)  # noqa: E731
        monkeypatch.setattr(checkpoint, "checkpoint", counting)
        # transformers binds the function when it enables checkpointing, from the name its module imported
        monkeypatch.setattr(modeling_utils, "checkpoint", counting, raising=False)
    _fit(module, rollouts=2)
    assert len(minibatches) == 2 * 4 * 2  # every epoch ran: the KL early stop never fired
    # checkpointed layers recompute without the KV cache, and generation's own scores come from the KV-cached
    # decoding steps: the same numbers up to float rounding (~1e-13), not noise
    tolerance = 1e-10 if gradient_checkpointing or old_logprobs_from == "generation" else 0.0
    assert all(float(s["approx_kl"]) <= tolerance and float(s["clipfrac"]) == 0.0 for s in minibatches), minibatches
    # the ratio itself is a float32 exp(): scores from the KV-cached steps put it a few ulps (1.19e-7) off 1
    # (and so do the recomputed checkpointed layers, whose log-probs agree to ~1e-13)
    ratio_tolerance = 1e-6 if tolerance else 0.0
    assert all(abs(float(s["ratio_mean"]) - 1.0) <= ratio_tolerance for s in minibatches)
    assert [s["ppo_epochs_run"] for s in summaries] == [4.0, 4.0]
    assert bool(checkpointed) == gradient_checkpointing


def test_critic_warmup_moves_the_value_head_only(dropout_policy):
    module = _module(dropout_policy, lr=0.5, critic_warmup_rollouts=2)
    module.policy.load()
    adapter = {n: p.detach().clone() for n, p in module.policy.model.named_parameters() if p.requires_grad}
    head = module.policy.value_head.weight.detach().clone()
    _fit(module, rollouts=2)
    assert all(torch.equal(p, adapter[n]) for n, p in module.policy.model.named_parameters() if p.requires_grad)
    assert not torch.equal(module.policy.value_head.weight, head)
    _fit(module, rollouts=3)  # the third rollout updates the policy as well
    assert any(not torch.equal(p, adapter[n]) for n, p in module.policy.model.named_parameters() if p.requires_grad)
