"""Tokenizers of the real families (T5/mT5, Llama, RoBERTa/Longformer) trained offline: ids, templates, EOS, offsets."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer, LlamaTokenizer, RobertaTokenizer, T5Tokenizer

from alarm_pl.assets.dummy import dummy_corpus
from alarm_pl.assets.tokenizer_builders import train_llama_tokenizer, train_roberta_bpe, train_t5_tokenizer

TEXT = "The señor paid 20 € — a café 😀 ﬁn."


@pytest.fixture(scope="module")
def texts():
    return dummy_corpus()[:4000] + dummy_corpus()[-200:]  # tiny MT sentences and QA-Feedback passages


@pytest.fixture(scope="module")
def t5(texts):
    return train_t5_tokenizer(texts, vocab_size=1100, extra_ids=100)


@pytest.fixture(scope="module")
def llama(texts):
    return train_llama_tokenizer(texts, vocab_size=1000)


@pytest.fixture(scope="module")
def roberta(texts):
    return train_roberta_bpe(texts, vocab_size=1000, add_prefix_space=True)


def test_t5_ids_sentinels_eos_and_unknown_characters(t5, texts):
    assert isinstance(t5, T5Tokenizer) and len(t5) == 1100
    assert (t5.pad_token_id, t5.eos_token_id, t5.unk_token_id, t5.bos_token) == (0, 1, 2, None)
    # T5's sentinels sit at the top in reverse: <extra_id_0> is the last id, <extra_id_99> the 100th from the end
    assert t5.convert_tokens_to_ids(["<extra_id_0>", "<extra_id_99>"]) == [1099, 1000]
    ids = t5(TEXT).input_ids
    assert ids[-1] == 1 and ids.count(1) == 1  # </s> appended once, nothing prepended
    assert 2 in ids  # no byte fallback: the emoji (and other unseen characters) become <unk>, as with real T5
    decoded = t5.decode(ids, skip_special_tokens=True)
    assert "😀" not in decoded and "fin." in decoded  # NFKC folds "ﬁ" into "fi" (nmt_nfkc, like T5's spiece.model)
    truncated = t5(" ".join(texts[:50]), truncation=True, max_length=12).input_ids
    assert len(truncated) == 12 and truncated[-1] == 1  # truncation keeps the EOS
    mt5 = train_t5_tokenizer(texts, vocab_size=1000, extra_ids=0)
    assert len(mt5) == 1000 and not any("extra_id" in t for t in mt5.get_vocab())  # mT5: no sentinel tokens


def test_llama_ids_bos_bytes_and_no_pad(llama):
    assert isinstance(llama, LlamaTokenizer)
    assert (llama.unk_token_id, llama.bos_token_id, llama.eos_token_id, llama.pad_token) == (0, 1, 2, None)
    assert llama.convert_ids_to_tokens([3, 258]) == ["<0x00>", "<0xFF>"]  # byte pieces right after the specials
    ids = llama(TEXT).input_ids
    assert ids[0] == 1 and 1 not in ids[1:] and 2 not in ids  # <s> prepended, no </s> appended (add_eos_token False)
    assert 0 not in ids  # byte fallback: nothing is unknown
    assert llama.decode(ids, skip_special_tokens=True) == TEXT  # identity normalisation: exact round trip
    assert "<0xF0>" in llama.convert_ids_to_tokens(ids)  # the emoji, unseen in training, as UTF-8 bytes


def test_roberta_ids_template_and_offsets(roberta):
    assert isinstance(roberta, RobertaTokenizer)
    assert [roberta.convert_tokens_to_ids(t) for t in ("<s>", "<pad>", "</s>", "<unk>")] == [0, 1, 2, 3]
    assert roberta.mask_token_id == len(roberta) - 1
    text = "question: who? answer: </s> He is tall. </s> Señor 😀!"
    enc = roberta(text, return_offsets_mapping=True)
    ids, offsets = enc.input_ids, enc.offset_mapping
    assert ids[0] == 0 and ids[-1] == 2  # <s> … </s>
    first, second = text.index("</s>"), text.rindex("</s>")
    # the literal markers are the special token </s> and their offsets point at them in the text
    inner = [i for i, t in enumerate(ids[1:-1], 1) if t == 2]
    assert [tuple(offsets[i]) for i in inner] == [(first, first + 4), (second, second + 4)]
    # every character outside spaces is covered by exactly the tokens the offsets name (byte-level: bytes of "ñ"
    # and of the emoji share the character span of their character)
    covered = {c for s, e in offsets for c in range(s, e)}
    assert covered == {i for i, ch in enumerate(text) if not ch.isspace()}
    assert roberta.decode(ids, skip_special_tokens=True) == " " + text.replace("</s>", "")  # prefix space kept


@pytest.mark.parametrize("name", ["t5", "llama", "roberta"])
def test_save_and_reload_keep_class_and_ids(name, t5, llama, roberta, tmp_path):
    tok = {"t5": t5, "llama": llama, "roberta": roberta}[name]
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert type(again) is type(tok)
    assert again(TEXT).input_ids == tok(TEXT).input_ids
    assert again.all_special_ids == tok.all_special_ids


def test_family_training_is_deterministic(texts):
    assert train_llama_tokenizer(texts, 600).get_vocab() == train_llama_tokenizer(texts, 600).get_vocab()
    assert train_t5_tokenizer(texts, 700, 0).get_vocab() == train_t5_tokenizer(texts, 700, 0).get_vocab()


def test_family_builders_reject_tiny_vocabularies(texts):
    with pytest.raises(ValueError, match="leaves 0 ids for trained pieces"):
        train_t5_tokenizer(texts, vocab_size=100, extra_ids=100)
    with pytest.raises(ValueError, match="must exceed 259"):
        train_llama_tokenizer(texts, vocab_size=200)
    with pytest.raises(ValueError, match="must exceed 260"):
        train_roberta_bpe(texts, vocab_size=200)
