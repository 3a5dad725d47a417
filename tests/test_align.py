"""Character spans <-> response tokens on the three tokenizer families, trained in-process."""

import random

import pytest
import torch

from alarm_pl.assets.tokenizer_builders import byte_tokenizer, train_byte_bpe, train_sentencepiece
from alarm_pl.rewards.align import (
    _char_map,
    char_spans_to_token_mask,
    decode_batch_with_spans,
    decode_with_spans,
    scatter_token_values,
    token_ending_at,
    tokens_overlapping,
)

CORPUS = [
    "The president thanked the members for their work.",
    "I would like to ask a question about the agenda.",
    "The vote will take place tomorrow at noon.",
    "We cannot accept this proposal as it stands.",
    "El presidente agradeció a los diputados su trabajo.",
    "Quisiera hacer una pregunta sobre el orden del día.",
    "La votación tendrá lugar mañana a mediodía.",
    "No podemos aceptar esta propuesta tal como está.",
    "The niño paid 3 € for the café.",
    "Señorías, el año pasado fue difícil.",
] * 3
SAMPLES = [
    "El niño comió.",
    "€5 and a café ☕ 😀!",
    " leading space and trailing spaces  ",
    "Añoranza",
    "line one\nline two\n\nthe end",
    "😀",
]


@pytest.fixture(scope="module")
def tokenizers():
    return {
        "byte_bpe": train_byte_bpe(CORPUS, vocab_size=350),
        "sentencepiece": train_sentencepiece(CORPUS, vocab_size=450),
        "byt5": byte_tokenizer(),
    }


def variants(tok, text):
    """The encoded text, without eos, and behind a leading special token (a decoder-start pad)."""
    ids = tok(text).input_ids
    no_eos = [i for i in ids if i != tok.eos_token_id]
    return [ids, no_eos, [tok.pad_token_id] + ids]


@pytest.mark.parametrize("family", ["byte_bpe", "sentencepiece", "byt5"])
@pytest.mark.parametrize("text", SAMPLES)
def test_text_equals_decode_and_spans_tile_it(tokenizers, family, text):
    tok = tokenizers[family]
    special = set(tok.all_special_ids)
    for ids in variants(tok, text):
        decoded, spans = decode_with_spans(tok, ids)
        assert decoded == tok.decode(ids, skip_special_tokens=True)
        assert len(spans) == len(ids)
        for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
            assert s0 <= s1 and e0 <= e1  # monotone
        for token, (s, e) in zip(ids, spans):
            assert (s == e) == (token in special)  # only special tokens are empty here
        distinct = list(dict.fromkeys(s for s in spans if s[0] < s[1]))
        assert "".join(decoded[s:e] for s, e in distinct) == decoded  # spans tile the text, no gap or overlap
        real = [s for t, s in zip(ids, spans) if t not in special]
        assert real[0][0] == 0 and real[-1][1] == len(decoded)  # spans at the very start and end


def test_byt5_bytes_of_one_character_share_its_span(tokenizers):
    tok = tokenizers["byt5"]
    text, spans = decode_with_spans(tok, tok("El niño").input_ids)
    # E l ␣ n i [C3 B1]=ñ o </s>: both bytes of "ñ" span character 5; eos is empty at the end (7).
    assert spans == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (5, 6), (6, 7), (7, 7)]
    text, spans = decode_with_spans(tok, tok("😀a").input_ids[:-1])
    assert spans == [(0, 1)] * 4 + [(1, 2)]  # 4 UTF-8 bytes of the emoji, then "a"


def test_byte_bpe_partial_tokens_share_span(tokenizers):
    tok = tokenizers["byte_bpe"]
    ids = tok("x 😀").input_ids
    text, spans = decode_with_spans(tok, ids)
    emoji = [span for span in spans if text[span[0] : span[1]].endswith("😀")]
    assert len(emoji) >= 2 and len(set(emoji)) == 1  # the emoji's byte tokens (unseen in training) share one span


def test_sentencepiece_leading_space_and_byte_fallback(tokenizers):
    tok = tokenizers["sentencepiece"]
    ids = tok("El niño 😀").input_ids
    pieces = tok.convert_ids_to_tokens(ids)
    text, spans = decode_with_spans(tok, ids)
    assert text == "El niño 😀"  # the dummy-prefix space is dropped at the start, as decode does
    by_piece = dict(zip(pieces, spans))
    assert text[by_piece["<0x9F>"][0] : by_piece["<0x9F>"][1]] == "😀"  # byte-fallback pieces map to the character
    word = next(i for i, p in enumerate(pieces) if p.startswith("▁n"))
    assert text[spans[word][0]] == " "  # a word piece in the middle carries its leading space


@pytest.mark.parametrize("family", ["byte_bpe", "sentencepiece", "byt5"])
def test_alignment_is_linear(tokenizers, family, monkeypatch):
    tok = tokenizers[family]
    rng = random.Random(0)
    long_text = " ".join(rng.choice(CORPUS) for _ in range(400))
    ids = tok(long_text).input_ids[:2000]
    assert len(ids) == 2000
    decoded = []  # how many ids each tokenizer decode is given: the work, counted instead of timed (bench/ times it)
    original = type(tok).decode

    def counting_decode(self, token_ids, *args, **kwargs):
        decoded.append(len(token_ids))
        return original(self, token_ids, *args, **kwargs)

    monkeypatch.setattr(type(tok), "decode", counting_decode)
    text, spans = decode_with_spans(tok, ids)
    monkeypatch.undo()
    assert text == tok.decode(ids, skip_special_tokens=True) and len(spans) == 2000
    # O(T · window): one full decode plus windows of at most context + 1 = 5 ids, a few per token; a quadratic
    # scheme (decoding every prefix) would decode ~2000²/2 ids
    assert sum(decoded) <= 2000 + 4 * 5 * 2000, (len(decoded), sum(decoded))


def test_decode_batch_with_right_padding(tokenizers):
    tok = tokenizers["byt5"]
    rows = [tok("ab").input_ids, tok("ñ").input_ids + [0, 0], [tok.eos_token_id, 0, 0, 0]]  # lengths 3, 3, 1
    ids = torch.tensor([rows[0] + [0], rows[1][:4], rows[2]])  # (3, 4), right-padded with pad id 0
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0], [1, 0, 0, 0]]).bool()
    texts, spans = decode_batch_with_spans(tok, ids, mask)
    assert texts == ["ab", "ñ", ""]
    assert spans == [[(0, 1), (1, 2), (2, 2)], [(0, 1), (0, 1), (1, 1)], [(0, 0)]]
    assert decode_with_spans(tok, []) == ("", [])


def test_spans_are_decoded_only_when_read(tokenizers, monkeypatch):
    import alarm_pl.rewards.align as align

    tok = tokenizers["sentencepiece"]
    rows = [tok("el perro come pan").input_ids, tok("la niña").input_ids]
    ids = torch.tensor([rows[0], rows[1] + [tok.pad_token_id] * (len(rows[0]) - len(rows[1]))])
    mask = torch.tensor([[True] * len(rows[0]), [True] * len(rows[1]) + [False] * (len(rows[0]) - len(rows[1]))])
    calls = []
    decode = align.decode_with_spans
    monkeypatch.setattr(align, "decode_with_spans", lambda t, r: calls.append(list(r)) or decode(t, r))
    texts, spans = decode_batch_with_spans(tok, ids, mask)
    assert texts == [tok.decode(r, skip_special_tokens=True) for r in rows] and calls == []
    assert spans[1] == decode(tok, rows[1])[1] and calls == [rows[1]]
    assert spans[1] is spans[1] and len(calls) == 1  # computed once
    assert list(spans) == [decode(tok, r)[1] for r in rows] and len(spans) == 2


SPANS = [(0, 3), (3, 3), (3, 7), (7, 8), (7, 8), (8, 12), (12, 12)]  # "The| |cat|ñ(2 bytes)| sat|eos" style


def test_tokens_overlapping_rule():
    assert tokens_overlapping(SPANS, 0, 3) == [0]  # the empty span (3, 3) touches but does not overlap
    assert tokens_overlapping(SPANS, 2, 4) == [0, 2]  # partial overlap on both sides
    assert tokens_overlapping(SPANS, 7, 8) == [3, 4]  # both byte tokens of one character
    assert tokens_overlapping(SPANS, 11, 20) == [5]  # past the end is clipped; eos (12, 12) never overlaps
    assert tokens_overlapping(SPANS, 5, 5) == []  # empty character span
    assert char_spans_to_token_mask(SPANS, [(8, 9), (0, 1)]) == [True, False, False, False, False, True, False]


def test_token_ending_at():
    assert token_ending_at(SPANS, 7) == 2  # the character before 7 is covered by token 2
    assert token_ending_at(SPANS, 8) == 4  # shared span: the last byte token completes the character
    assert token_ending_at(SPANS, 12) == 5  # not the empty eos span at 12
    text, spans = "Hi.  Next", [(0, 2), (2, 3), (3, 4), (4, 9)]  # SentencePiece-like: "Hi" "." "▁" "▁Next"
    assert token_ending_at(spans, 5) == 3  # the span "Hi.  " ends inside "▁Next"'s leading space...
    assert token_ending_at(spans, 5, text=text) == 1  # ...so with the text, trailing spaces are skipped: "."
    with pytest.raises(ValueError, match="no token with text starts before character 0"):
        token_ending_at(SPANS, 0)


def test_char_map_reconciles_cleaned_up_spaces():
    # token-by-token "Hello , world ." vs a full decode that removed spaces before punctuation
    mapping = _char_map("Hello , world .", "Hello, world.")
    assert mapping[6] == 5 and mapping[7] == 6  # "," moves one left
    assert mapping[14] == 12 and mapping[15] == 13  # "." and the end
    assert all(a <= b for a, b in zip(mapping, mapping[1:]))


def test_scatter_token_values_mixed_lengths():
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]]).bool()
    values, placed = scatter_token_values(mask, [[0, 2], []], [[1.5, -1.0], []])
    assert values.tolist() == [[1.5, 0.0, -1.0], [0.0, 0.0, 0.0]]
    assert placed.tolist() == [[True, False, True], [False, False, False]]
    with pytest.raises(ValueError, match="out of range for response 1"):
        scatter_token_values(mask, [[0], [1]], [[1.0], [1.0]])
