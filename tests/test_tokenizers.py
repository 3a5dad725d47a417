"""Offline tokenizer builders: special tokens, round trips, determinism, save/load."""

import pytest
from transformers import AutoTokenizer

from alarm_pl.assets.tokenizer_builders import byte_tokenizer, train_byte_bpe, train_sentencepiece

TEXTS = [
    "The committee approved the report without amendments.",
    "We must protect the rights of every citizen in Europe.",
    "El comité aprobó el informe sin enmiendas.",
    "Debemos proteger los derechos de cada ciudadano en España.",
    "The señor paid 20 € for a café crème.",
    "¿Dónde está la estación? Está cerca del año pasado.",
] * 4
HARD = "Añoranza: 5 € — naïve café 😀 中文, ﬁn <0x41> end."


@pytest.fixture(scope="module")
def bpe():
    return train_byte_bpe(TEXTS, vocab_size=400)


@pytest.fixture(scope="module")
def spm():
    return train_sentencepiece(TEXTS, vocab_size=400)


def test_byte_bpe_specials_and_round_trip(bpe):
    assert bpe.eos_token == bpe.bos_token == bpe.unk_token == "<|endoftext|>"
    assert (bpe.eos_token_id, bpe.pad_token_id) == (0, 1)  # pad is separate from eos
    ids = bpe(HARD).input_ids
    assert bpe.eos_token_id not in ids  # GPT-2 style: no eos appended
    assert bpe.decode(ids) == HARD  # every byte is in the alphabet, so unseen characters round-trip
    assert bpe.decode(bpe(" leading space").input_ids) == " leading space"  # no prefix space added or dropped


def test_sentencepiece_specials_and_round_trip(spm):
    assert (spm.pad_token_id, spm.eos_token_id, spm.unk_token_id) == (0, 1, 2)  # T5's ids
    assert spm.bos_token is None
    ids = spm(HARD).input_ids
    assert ids[-1] == spm.eos_token_id  # T5 appends </s>
    assert spm.unk_token_id not in ids  # byte fallback instead of <unk>
    assert spm.decode(ids, skip_special_tokens=True) == HARD  # incl. "ﬁ" (no NFKC) and literal "<0x41>"
    tokens = spm.convert_ids_to_tokens(spm("un 😀").input_ids)
    assert tokens[-5:] == ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>", "</s>"]  # emoji unseen in training: 4 bytes
    assert spm.convert_ids_to_tokens(spm("el").input_ids)[0].startswith("▁")  # dummy prefix like T5


def test_byte_tokenizer_ids_match_byt5():
    tok = byte_tokenizer()
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, len(tok)) == (0, 1, 2, 384)
    # "ñ" is UTF-8 C3 B1 -> ids 0xC3 + 3 = 198 and 0xB1 + 3 = 180; then </s>.
    assert tok("ñ").input_ids == [198, 180, 1]
    assert tok.decode(tok(HARD).input_ids, skip_special_tokens=True) == HARD


@pytest.mark.parametrize("builder", [train_byte_bpe, train_sentencepiece])
def test_training_is_deterministic(builder):
    first, second = builder(TEXTS, vocab_size=400), builder(TEXTS, vocab_size=400)
    assert first.get_vocab() == second.get_vocab()
    assert first(HARD).input_ids == second(HARD).input_ids


@pytest.mark.parametrize("name", ["bpe", "spm", "byte"])
def test_save_and_reload_with_auto_tokenizer(name, bpe, spm, tmp_path):
    tok = {"bpe": bpe, "spm": spm, "byte": byte_tokenizer()}[name]
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(HARD).input_ids == tok(HARD).input_ids
    assert (again.pad_token_id, again.eos_token_id) == (tok.pad_token_id, tok.eos_token_id)


def test_builders_reject_bad_input():
    with pytest.raises(ValueError, match="train_byte_bpe: needs at least one non-empty"):
        train_byte_bpe(["", "  "])
    with pytest.raises(ValueError, match="vocab_size must be at least 258"):
        train_byte_bpe(TEXTS, vocab_size=100)
    with pytest.raises(ValueError, match="train_sentencepiece: vocab_size must be at least"):
        train_sentencepiece(TEXTS, vocab_size=260)
