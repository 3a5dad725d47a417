"""Dummy weights: the paper's architectures with seeded random weights, through the real loading path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import LLAMA_SHRINK, LONGFORMER_SHRINK, T5_SHRINK
from safetensors import safe_open

from alarm_pl.assets import dummy
from alarm_pl.assets.dummy import (
    build_dummy_checkpoint,
    load_architecture,
    parameter_count,
    shipped_architectures,
    with_overrides,
)
from alarm_pl.models.loading import resolve_model_reference
from alarm_pl.models.reward_model import ULTRARM_KEY_MAPPING, FrozenRewardModel
from alarm_pl.models.templates import ULTRARM_TEMPLATE
from alarm_pl.rewards.holistic import RewardModelScorer

KEY = "model.holistic.init_args.model_name_or_path"


@pytest.mark.parametrize(
    "name,head,count",
    [
        ("mt5-base", "lm", 582_401_280),  # mT5-base: "580M" (mT5 paper, Table 2 lists 580M for Base)
        ("t5-large", "lm", 737_668_096),  # the t5-large checkpoint's 738M (tied embeddings)
        ("ultrarm-13b", "sequence", 12_852_029_440),  # Llama-2-13B's 13.016 B minus its 32000×5120 LM head
        ("fgrlhf-factuality", "token", 148_071_171),  # longformer-base-4096's 148.7 M + a 768×3 token head
        ("fgrlhf-completeness", "sequence", 148_660_225),  # + RoBERTa's 768×768 dense and 768×1 regression head
    ],
)
def test_full_size_architectures_have_the_published_parameter_counts(name, head, count):
    assert parameter_count(load_architecture(name, KEY), head) == count  # counted on the meta device


def test_references_and_overrides_are_checked():
    assert {
        "mt5-base",
        "t5-large",
        "ultrarm-13b",
        "fgrlhf-factuality",
        "fgrlhf-relevance",
        "fgrlhf-completeness",
    } <= set(shipped_architectures())
    with pytest.raises(
        ValueError,
        match=r"model.holistic.init_args.model_name_or_path: unknown dummy architecture "
        r"'dummy:ultra'.*ultrarm-13b",
    ):
        load_architecture("ultra", KEY)
    with pytest.raises(FileNotFoundError, match="nowhere/config.json does not exist"):
        load_architecture("/nowhere/config.json", KEY)
    arch = load_architecture("mt5-base", KEY)
    with pytest.raises(ValueError, match=r"\['num_hidden_layer'\] are not config.json keys of model_type 'mt5'"):
        with_overrides(arch, {"num_hidden_layer": 2}, KEY)
    with pytest.raises(ValueError, match=r"\['model_type'\]"):
        with_overrides(arch, {"model_type": "t5"}, KEY)
    with pytest.raises(ValueError, match="dummy_overrides .* only apply to 'dummy:' references"):
        resolve_model_reference("tiny:mt-seq2seq", KEY, dummy_overrides={"num_layers": 1})


def test_large_architecture_is_never_built_on_a_cpu(monkeypatch):
    with pytest.raises(
        RuntimeError,
        match=r"12.9 B parameters.*never materialised on a CPU \(no CUDA device\).*"
        r"num_hidden_layers",
    ):
        resolve_model_reference("dummy:ultrarm-13b", KEY, "sequence")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # even with a GPU, a CPU placement is refused
    with pytest.raises(RuntimeError, match=r"\(device cpu\)"):
        resolve_model_reference("dummy:ultrarm-13b", KEY, "sequence", device="cpu")


def test_config_path_reference_builds_the_family_tokenizer(tmp_path):
    config = {
        "model_type": "t5",
        "vocab_size": 1500,
        "d_model": 32,
        "d_ff": 64,
        "d_kv": 8,
        "num_layers": 1,
        "num_heads": 4,
        "feed_forward_proj": "relu",
        "dropout_rate": 0.1,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    path = resolve_model_reference(f"dummy:{tmp_path}", KEY)
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, T5ForConditionalGeneration, T5Tokenizer

    model, tokenizer = AutoModelForSeq2SeqLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    assert type(model) is T5ForConditionalGeneration and model.config.num_decoder_layers == 1
    assert type(tokenizer) is T5Tokenizer and len(tokenizer) <= 1500
    assert tokenizer.convert_tokens_to_ids("<extra_id_0>") == len(tokenizer) - 1  # model_type t5: 100 sentinels
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"model_type": "gpt_neox"}))
    with pytest.raises(ValueError, match="model_type 'gpt_neox' has no dummy tokenizer family"):
        resolve_model_reference(f"dummy:{tmp_path / 'bad'}", KEY)


def test_weights_are_seeded_by_content(tmp_path):
    arch = with_overrides(load_architecture("fgrlhf-completeness", KEY), {**LONGFORMER_SHRINK, "vocab_size": 600}, KEY)
    before = torch.get_rng_state()
    for run in ("a", "b"):
        build_dummy_checkpoint(arch, "sequence", tmp_path / run, seed=7)
    assert torch.equal(torch.get_rng_state(), before)  # a cold build leaves the run's random stream untouched
    build_dummy_checkpoint(arch, "sequence", tmp_path / "c", seed=8)
    tensors = {}
    for run in "abc":
        with safe_open(tmp_path / run / "model.safetensors", "pt") as f:
            tensors[run] = {k: f.get_tensor(k) for k in f.keys()}
    assert all(torch.equal(tensors["a"][k], tensors["b"][k]) for k in tensors["a"])
    assert not torch.equal(tensors["a"]["classifier.out_proj.weight"], tensors["c"]["classifier.out_proj.weight"])
    provenance = json.loads((tmp_path / "a" / "dummy.json").read_text())
    assert provenance["seed"] == 7 and provenance["config"]["num_hidden_layers"] == 2


def test_mt5_policy_keeps_its_class_untied_head_dropout_and_eos():
    from alarm_pl.config import GenerationConfig, PolicyConfig
    from alarm_pl.models.policy import Policy

    policy = Policy(PolicyConfig(model_name_or_path="dummy:mt5-base", dummy_overrides=T5_SHRINK))
    policy.load()
    base = policy.model.get_base_model()
    assert type(base).__name__ == "MT5ForConditionalGeneration"
    assert base.config.d_model == 64
    # the built checkpoint keeps the real model's dropout; a policy loaded for PPO has every dropout zeroed (issue 7.1)
    path = resolve_model_reference("dummy:mt5-base", "test", "lm", T5_SHRINK)
    assert json.loads((Path(path) / "config.json").read_text())["dropout_rate"] == 0.1
    assert base.config.dropout_rate == 0.0
    assert base.lm_head.weight.data_ptr() != base.shared.weight.data_ptr()  # mT5's output embedding is untied
    assert type(policy.tokenizer).__name__ == "T5Tokenizer" and policy.tokenizer.eos_token_id == 1
    assert len(policy.tokenizer) == 2048 == base.config.vocab_size  # tokenizer sized to the shrunk vocabulary
    query, mask = policy.tokenize_prompts(
        ["translate Spanish to English: El perro come pan.", "Hola."], 32, torch.device("cpu")
    )
    assert query[0, mask[0].sum() - 1] == 1 and query[1, mask[1].sum() - 1] == 1  # each prompt ends with </s>
    torch.manual_seed(0)
    out = policy.generate(query, mask, GenerationConfig(max_new_tokens=8), do_sample=True)
    assert out.response_ids.shape == (2, 8)
    for row, row_mask in zip(out.response_ids, out.response_mask):
        eos = (row == 1).nonzero()
        assert row_mask.sum() == (int(eos[0]) + 1 if len(eos) else 8)  # EOS, when sampled, is the last real token


def test_ultrarm_dummy_keeps_its_head_name_and_scores_at_the_last_real_token():
    path = resolve_model_reference("dummy:ultrarm-13b", KEY, "sequence", LLAMA_SHRINK)
    with safe_open(f"{path}/model.safetensors", "pt") as f:
        assert "regression_head.weight" in f.keys() and "score.weight" not in f.keys()
    with pytest.raises(ValueError, match="score.weight"):  # exactly as with the real checkpoint
        FrozenRewardModel.from_pretrained("dummy:ultrarm-13b", dummy_overrides=LLAMA_SHRINK)
    rm = FrozenRewardModel.from_pretrained(
        "dummy:ultrarm-13b",
        dummy_overrides=LLAMA_SHRINK,
        key_mapping=ULTRARM_KEY_MAPPING,
        quantization_bits=8,
        allow_cpu_quantization=True,
        dtype="bfloat16",
    )
    assert type(rm.model).__name__ == "LlamaForSequenceClassification"
    assert type(rm.model.model.layers[0].self_attn.q_proj).__name__ == "Linear8bitLt"
    assert rm.tokenizer.pad_token == "</s>"  # Llama has no pad token: eos pads, and the read position handles it
    texts = [rm.format(["Where is the cat?"], [r])[0][0] for r in ("On the mat.", "It sat on the mat all day.", "")]
    assert texts[0] == "Human: Where is the cat?\nAssistant: On the mat." and ULTRARM_TEMPLATE.startswith("Human:")
    batched = rm.score_texts(texts)  # mixed lengths in one right-padded batch
    alone = torch.cat([rm.score_texts([t]) for t in texts])
    torch.testing.assert_close(batched, alone, atol=0.05, rtol=0.0)  # int8 kernels: batch-dependent rounding
    assert len(set(alone.tolist())) == 3


def test_longformer_token_classifier_reads_character_offsets():
    rm = FrozenRewardModel.from_pretrained("dummy:fgrlhf-relevance", kind="token", dummy_overrides=LONGFORMER_SHRINK)
    assert type(rm.model).__name__ == "LongformerForTokenClassification"
    assert rm.model.config.id2label == {0: "Ignore", 1: "NF-ERR", 2: "O"}
    assert rm.tokenizer.add_prefix_space is True and rm.max_length == 1024  # capped at min(4096 positions, 1024)
    text = "question: Who won? context: wikipage: X text: y answer: </s> He won, then he lost."
    out = rm.token_logits([text, "short"])[0]
    assert out.logits.shape == (len(out.offsets), 3)
    marker = text.index("</s>")
    reads = [i for i, (s, e) in enumerate(out.offsets.tolist()) if (s, e) == (marker, marker + 4)]
    assert len(reads) == 1  # the marker is one token whose character span is the marker's
    assert dummy.TOKENIZER_MAX_VOCAB >= len(rm.tokenizer)


def test_text_level_retokenization_from_policy_to_reward_models():
    """A T5 policy's response, decoded to text, read by a Llama reward model (template) and a Longformer token
    classifier (character offsets), and the aspect values placed back on the policy's own tokens."""
    from transformers import AutoTokenizer

    from alarm_pl.rewards.align import decode_with_spans
    from alarm_pl.rewards.aspects.model_aspects import TokenClassificationAspect
    from alarm_pl.rewards.base import ScoringInput

    policy_tok = AutoTokenizer.from_pretrained(resolve_model_reference("dummy:t5-large", KEY, "lm", T5_SHRINK))
    ids = policy_tok("He won the cup in 1999. She lost, then she left.").input_ids  # ends with </s>
    text, spans = decode_with_spans(policy_tok, ids)
    assert text == "He won the cup in 1999. She lost, then she left." and len(spans) == len(ids)
    mask = torch.ones(1, len(ids), dtype=torch.bool)
    inputs = ScoringInput(
        ["question: who won? context: wikipage: Cup text: He won."],
        [text],
        [None],
        [{}],
        torch.tensor([ids]),
        mask,
        [spans],
    )
    # FineGrainedRLHF's factuality scheme [F-ERR, Ignore, O], checked against the dummy's id2label at setup
    aspect = TokenClassificationAspect(
        "dummy:fgrlhf-factuality",
        dummy_overrides=LONGFORMER_SHRINK,
        positive_label=2,
        negative_label=0,
        ignore_labels=[1],
        marker="</s>",
    )
    aspect.setup(torch.device("cpu"))
    score = aspect.score(inputs)
    placed = score.placed[0].nonzero().flatten().tolist()
    # one value per sentence, each on the policy token that ends it (the pieces carrying "1999." and "left.")
    assert len(placed) == 2 and [text[slice(*spans[j])].endswith(".") for j in placed] == [True, True]
    assert text[: spans[placed[0]][1]].endswith("1999.") and text[: spans[placed[1]][1]] == text
    assert set(score.values[0, placed].tolist()) <= {0.5, -0.5} and score.values[0].count_nonzero() == 2

    rm = RewardModelScorer("dummy:ultrarm-13b", dummy_overrides=LLAMA_SHRINK, key_mapping=ULTRARM_KEY_MAPPING)
    rm.setup(torch.device("cpu"))
    formatted, start = rm.model.format(inputs.prompts, inputs.responses)[0]
    assert formatted[start:] == text and formatted.startswith("Human: question: who won?")
    holistic = rm.score(inputs)
    assert holistic.placed[0].tolist() == [False] * (len(ids) - 1) + [True]  # on the policy's last token (</s>)
    assert float(holistic.values[0, -1]) == pytest.approx(float(rm.model.score_texts([formatted])[0]), abs=1e-6)
