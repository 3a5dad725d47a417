"""FrozenRewardModel and RewardModelScorer on tiny models built from config objects and saved to tmp_path."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForTokenClassification,
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2Model,
)

from alarm_pl.assets.tokenizer_builders import train_byte_bpe
from alarm_pl.models.reward_model import (
    ULTRARM_KEY_MAPPING,
    FrozenRewardModel,
    length_ordered_batches,
    unused_token_id,
)
from alarm_pl.models.templates import format_template
from alarm_pl.rewards.base import ScorerError, ScoringInput
from alarm_pl.rewards.holistic import RewardModelScorer

CORPUS = ["the cat sat on the mat.", "a dog ran in the park!", "Human: hi\nAssistant: hello there"] * 4
TEXTS = ["a", "the cat sat on the mat and the dog ran in the park", "hello there", "dog ran", "the mat."]


def tiny_tokenizer(pad: bool = True):
    """A byte-level BPE tokenizer; ``pad=False`` drops the pad token (GPT-2 style, eos is used instead)."""
    tok = train_byte_bpe(CORPUS, vocab_size=300)
    if not pad:
        tok.pad_token = None
    return tok


def set_saved_padding_side(path, side: str) -> None:
    """Make the tokenizer saved under ``path`` load with ``padding_side=side`` (save_pretrained drops it)."""
    config_file = path / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "padding_side": side}))
    assert AutoTokenizer.from_pretrained(path).padding_side == side


def save_sequence_model(path, tokenizer, width: int = 32, seed: int = 0, base_only: bool = False):
    """A 2-layer GPT-2 regression reward model (random, seeded) and its tokenizer saved under ``path``."""
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=width,
        n_layer=2,
        n_head=2,
        n_positions=64,
        num_labels=1,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = GPT2Model(config) if base_only else GPT2ForSequenceClassification(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model


def reference_score(model: GPT2ForSequenceClassification, tokenizer, text: str, max_length: int = 64) -> float:
    """The head applied to the hidden state of the text's last token, no padding involved (independent of the
    pad-token logic under test); only the last ``max_length`` tokens are kept."""
    ids = tokenizer(text)["input_ids"][-max_length:]
    hidden = model.transformer(torch.tensor([ids])).last_hidden_state[0, -1]  # (H,)
    return float(model.score(hidden)[0])


@pytest.mark.parametrize("padding_side,pad", [("right", True), ("left", True), ("left", False)])
def test_batched_scores_equal_unpadded_reference(tmp_path, padding_side, pad):
    tok = tiny_tokenizer(pad)
    model = save_sequence_model(tmp_path, tok).eval()
    set_saved_padding_side(tmp_path, padding_side)
    rm = FrozenRewardModel.from_pretrained(str(tmp_path), batch_size=3)
    # batch_size 3 over 5 texts: two chunks, each with mixed lengths (1 to ~15 tokens).
    scores = rm.score_texts(TEXTS)
    with torch.no_grad():
        expected = torch.tensor([reference_score(model, tok, t) for t in TEXTS])
    assert scores.shape == (5,)
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([rm.score_texts([t]) for t in TEXTS]), expected, atol=1e-5, rtol=1e-5)


def test_length_ordered_batches():
    texts = ["aaaaa", "a", "aaa", "aa", "aaaa"]
    assert length_ordered_batches(texts, 2) == [[1, 3], [2, 4], [0]]  # lengths 1,2 | 3,4 | 5
    assert length_ordered_batches(texts, 5) == [[0, 1, 2, 3, 4]]  # one batch keeps the callers' order
    assert length_ordered_batches([], 4) == []


def test_pad_equal_to_a_real_token_still_reads_last_token(tmp_path):
    # No pad token: eos pads, and these texts *end* in eos. Transformers reads the rightmost non-pad id, which would
    # skip the trailing eos; the scorer pads with an unused id so the last real token (the eos) is read.
    tok = tiny_tokenizer(pad=False)
    model = save_sequence_model(tmp_path, tok).eval()
    rm = FrozenRewardModel.from_pretrained(str(tmp_path))
    texts = ["the cat<|endoftext|>", "a dog ran in the park<|endoftext|>"]
    with torch.no_grad():
        expected = torch.tensor([reference_score(model, tok, t) for t in texts])
    torch.testing.assert_close(rm.score_texts(texts), expected, atol=1e-5, rtol=1e-5)


def test_unused_token_id_prefers_pad_then_smallest_free():
    ids = torch.tensor([[5, 1, 9], [0, 2, 9]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    # real ids {5, 1, 0, 2, 9}: 9 is real (row 1), 7 is free, smallest free is 3.
    assert unused_token_id(ids, mask, preferred=7) == 7
    assert unused_token_id(ids, mask, preferred=9) == 3


def test_left_truncation_keeps_the_response_end(tmp_path):
    tok = tiny_tokenizer()
    model = save_sequence_model(tmp_path, tok).eval()
    rm = FrozenRewardModel.from_pretrained(str(tmp_path), max_length=6)
    text = TEXTS[1]
    assert len(tok(text)["input_ids"]) > 6
    with torch.no_grad():
        expected = reference_score(model, tok, text, max_length=6)
    assert float(rm.score_texts([text, "a"])[0]) == pytest.approx(expected, abs=1e-5)


def test_frozen_and_max_length_capped(tmp_path):
    save_sequence_model(tmp_path, tiny_tokenizer())
    rm = FrozenRewardModel.from_pretrained(str(tmp_path), max_length=1024)
    assert not rm.model.training
    assert not any(p.requires_grad for p in rm.model.parameters())
    assert rm.max_length == 64  # n_positions of the tiny model


def test_missing_head_fails_and_key_mapping_renames_ultrarm_head(tmp_path):
    tok = tiny_tokenizer()
    save_sequence_model(tmp_path / "base", tok, base_only=True)
    with pytest.raises(ValueError, match=r"rm\.path.*score\.weight.*key_mapping"):
        FrozenRewardModel.from_pretrained(str(tmp_path / "base"), what="rm.path")
    # An UltraRM-style checkpoint: the head is saved as regression_head.weight instead of score.weight.
    model = save_sequence_model(tmp_path / "ultra", tok).eval()
    weights = load_file(tmp_path / "ultra" / "model.safetensors")
    weights["regression_head.weight"] = weights.pop("score.weight")
    save_file(weights, tmp_path / "ultra" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="score.weight"):
        FrozenRewardModel.from_pretrained(str(tmp_path / "ultra"))
    rm = FrozenRewardModel.from_pretrained(str(tmp_path / "ultra"), key_mapping=ULTRARM_KEY_MAPPING)
    with torch.no_grad():
        expected = reference_score(model, tok, "hello there")
    assert float(rm.score_texts(["hello there"])[0]) == pytest.approx(expected, abs=1e-5)


def test_wrong_head_size_and_kind_mismatch(tmp_path):
    tok = tiny_tokenizer()
    torch.manual_seed(0)
    GPT2ForSequenceClassification(
        GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, num_labels=2)
    ).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"rm\.path: .* could not be loaded as a sequence reward model \(one"):
        FrozenRewardModel.from_pretrained(str(tmp_path), what="rm.path")
    model = GPT2ForSequenceClassification.from_pretrained(tmp_path)  # built directly: the class checks the head
    with pytest.raises(ValueError, match="num_labels=2"):
        FrozenRewardModel(model, tok)


def test_format_template():
    text, start = format_template("Human: {prompt}\nAssistant: {response} {json}", "hi {x}", "yo", None)
    assert text == "Human: hi {x}\nAssistant: yo {json}"
    assert start == len("Human: hi {x}\nAssistant: ") and text[start : start + 2] == "yo"
    assert format_template("{reference}|{response}", "p", "r", "ref") == ("ref|r", 4)
    with pytest.raises(ValueError, match="reference"):
        format_template("{reference} {response}", "p", "r", None)
    with pytest.raises(ValueError, match=r"\{response\}"):
        format_template("{prompt}", "p", "r")
    # FineGrainedRLHF's relevance input: the record's question, not the whole prompt
    assert format_template("question: {question} answer: {response}", "question: q? context: c", "a", None, "q?") == (
        "question: q? answer: a",
        len("question: q? answer: "),
    )
    with pytest.raises(ValueError, match="'question' in its metadata"):
        format_template("question: {question} answer: {response}", "p", "r")


def test_token_logits_unpadded_with_offsets(tmp_path):
    tok = tiny_tokenizer()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        max_position_embeddings=64,
    )
    BertForTokenClassification(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    rm = FrozenRewardModel.from_pretrained(str(tmp_path), kind="token", batch_size=4)
    batched = rm.token_logits(TEXTS)
    for text, out in zip(TEXTS, batched):
        n = len(tok(text)["input_ids"])
        assert out.logits.shape == (n, 3) and out.offsets.shape == (n, 2)
        torch.testing.assert_close(out.logits, rm.token_logits([text])[0].logits, atol=1e-5, rtol=1e-5)
        # byte-level BPE offsets tile the text: concatenated token texts give it back
        assert "".join(text[s:e] for s, e in out.offsets.tolist()) == text
    with pytest.raises(ValueError, match="kind='sequence'"):
        rm.score_texts(["a"])


@pytest.mark.parametrize("bits,layer", [(8, "Linear8bitLt"), (4, "Linear4bit")])
def test_quantized_loading_on_cpu(tmp_path, bits, layer):
    pytest.importorskip("bitsandbytes")
    tok = tiny_tokenizer()
    model = save_sequence_model(tmp_path, tok, width=64).eval()  # 4-bit CPU kernels need layers >= 64 wide
    rm = FrozenRewardModel.from_pretrained(str(tmp_path), quantization_bits=bits, allow_cpu_quantization=True)
    assert type(rm.model.transformer.h[0].attn.c_attn).__name__ == layer
    with torch.no_grad():
        expected = torch.tensor([reference_score(model, tok, t) for t in TEXTS[:3]])
    torch.testing.assert_close(rm.score_texts(TEXTS[:3]), expected, atol=0.05, rtol=0.0)


def scoring_input(prompts, responses, lengths):
    """A ScoringInput with dummy policy tokens: response i has lengths[i] tokens, right-padded."""
    width = max(lengths)
    mask = torch.tensor([[j < n for j in range(width)] for n in lengths])  # (B, T)
    spans = [[(j, j + 1) for j in range(n)] for n in lengths]
    return ScoringInput(
        prompts=prompts,
        responses=responses,
        references=[None] * len(prompts),
        metadata=[{} for _ in prompts],
        response_ids=mask.long(),
        response_mask=mask,
        token_spans=spans,
    )


def test_reward_model_scorer_applies_template_and_places_on_last_token(tmp_path):
    tok = tiny_tokenizer()
    model = save_sequence_model(tmp_path, tok).eval()
    scorer = RewardModelScorer(str(tmp_path))
    inputs = scoring_input(["hi", "where is the cat"], ["hello there", "on the mat."], [2, 4])
    with pytest.raises(ScorerError, match="holistic.*setup"):
        scorer.score(inputs)
    scorer.setup(torch.device("cpu"))
    score = scorer.score(inputs)
    with torch.no_grad():
        raw = torch.tensor(
            [
                reference_score(model, tok, "Human: hi\nAssistant: hello there"),
                reference_score(model, tok, "Human: where is the cat\nAssistant: on the mat."),
            ]
        )
    torch.testing.assert_close(score.metric, raw, atol=1e-5, rtol=1e-5)
    assert score.higher_is_better
    assert score.placed.tolist() == [[False, True, False, False], [False, False, False, True]]
    torch.testing.assert_close(score.values[0, 1], raw[0])
    torch.testing.assert_close(score.values[1, 3], raw[1])
    assert float(score.values.abs().sum()) == pytest.approx(float(raw.abs().sum()), abs=1e-5)


def test_reward_model_scorer_missing_path_names_scorer(tmp_path):
    scorer = RewardModelScorer(str(tmp_path / "missing"), name="ultrarm")
    with pytest.raises(FileNotFoundError, match=r"scorer 'ultrarm' model_name_or_path.*missing"):
        scorer.setup(torch.device("cpu"))
