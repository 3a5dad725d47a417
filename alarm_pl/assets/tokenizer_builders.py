"""Offline tokenizer builders: tokenizers trained in-process from a list of texts, never downloaded.

The tiny configurations and the tests need tokenizers of the three families the real policies use, without a model
hub:

- ``train_byte_bpe``: GPT-2 style byte-level BPE (decoder-only policies);
- ``train_sentencepiece``: T5 / mT5 style Unigram over ``▁``-marked words with byte fallback (encoder-decoder
  policies). The pieces are trained by the ``sentencepiece`` package (deterministic) and assembled into a fast
  tokenizer from the ``tokenizers`` library's SentencePiece-style components, so no model file is kept;
- ``byte_tokenizer``: ByT5's byte tokenizer (``transformers.ByT5Tokenizer`` needs no files);
- ``train_roberta_bpe``: RoBERTa / Longformer style byte-level BPE with ``<s> … </s>`` around every sequence (the
  FineGrainedRLHF reward models' tokenizer family).

Every builder returns a transformers tokenizer with ``pad``/``eos``/``unk`` set (and ``bos`` for the BPE one) that
survives ``save_pretrained`` / ``AutoTokenizer.from_pretrained(local_dir)``. Training is deterministic: the same
texts give the same vocabulary and ids.
"""

from __future__ import annotations

from typing import Sequence

from transformers import ByT5Tokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

BPE_EOS = "<|endoftext|>"
"""GPT-2's end-of-text token, also used as bos and unk by the byte-level BPE tokenizer."""
BPE_PAD = "<pad>"
"""A separate pad token, so that masking padding never masks a real end-of-text token."""
SP_SPECIALS = ("<pad>", "</s>", "<unk>")
"""T5's special tokens in id order: pad = 0, eos = 1, unk = 2."""
ROBERTA_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
"""RoBERTa's (and Longformer's) special tokens in id order: bos/cls 0, pad 1, eos/sep 2, unk 3, mask 4."""
N_BYTES = 256
PRINTABLE_ASCII = "".join(chr(c) for c in range(33, 127))
"""Characters every SentencePiece vocabulary built here covers (``!`` to ``~``)."""
BYTE_PIECE_SCORE = -1e6
"""Log-probability given to byte-fallback pieces so that they never match literal text like "<0x41>"."""


def _check_texts(texts: Sequence[str], builder: str) -> list[str]:
    """Return the non-empty texts as a list; raise when there are none."""
    kept = [t for t in texts if t and t.strip()]
    if not kept:
        raise ValueError(f"{builder}: needs at least one non-empty training text, got {len(texts)} text(s)")
    return kept


def train_byte_bpe(texts: Sequence[str], vocab_size: int = 1000) -> PreTrainedTokenizerFast:
    """Train a GPT-2 style byte-level BPE tokenizer on ``texts``.

    Every byte is in the base alphabet, so any text round-trips through encode/decode. No prefix space is added
    (like GPT-2). Special tokens: ``<|endoftext|>`` (id 0; eos, bos and unk) and ``<pad>`` (id 1).

    Args:
        texts: training texts.
        vocab_size: target vocabulary size including the 256 byte symbols and the 2 special tokens.

    Returns:
        A ``PreTrainedTokenizerFast`` (v5: ``TokenizersBackend``) with ``eos_token``, ``bos_token``, ``unk_token`` and
        ``pad_token`` set.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    kept = _check_texts(texts, "train_byte_bpe")
    if vocab_size < N_BYTES + 2:
        raise ValueError(f"train_byte_bpe: vocab_size must be at least {N_BYTES + 2} (bytes + specials), "
                         f"got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BPE_EOS, BPE_PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(kept, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=BPE_EOS,
        bos_token=BPE_EOS,
        unk_token=BPE_EOS,
        pad_token=BPE_PAD,
        clean_up_tokenization_spaces=False,
    )


def _train_unigram_pieces(texts: list[str], vocab_size: int) -> list[tuple[str, float]]:
    """Train a SentencePiece Unigram model and return its pieces in id order.

    The ``sentencepiece`` trainer is used because it is deterministic (the ``tokenizers`` Unigram trainer breaks score
    ties in hash order, so two runs on the same texts give different ids). Settings follow T5: pad 0, eos 1, unk 2,
    no bos, a dummy ``▁`` prefix; plus byte fallback (ids 3..258) and no normalisation so that text round-trips.
    Every printable ASCII character is a piece even when the texts lack it, so that a literal "<0x41>" in a text is
    segmented into characters rather than matched against the byte piece of that name.

    Args:
        texts: training texts.
        vocab_size: upper bound on the number of pieces (fewer when the texts are too small to fill it).

    Returns:
        ``(piece, score)`` pairs; index = token id.
    """
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, byte_fallback=True, character_coverage=1.0,
        normalization_rule_name="identity", add_dummy_prefix=True, remove_extra_whitespaces=False,
        hard_vocab_limit=False, num_threads=1, minloglevel=2, required_chars=PRINTABLE_ASCII,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    # Byte pieces only serve as fallback for uncovered characters, but the ``tokenizers`` Unigram model also matches
    # them against literal text ("<0x41>"). Their score must lose against any segmentation of that literal, even
    # one made of unknown characters (each costs about min_score - 10), hence far below every trained piece.
    return [(p, BYTE_PIECE_SCORE if sp.is_byte(i) else s) for i, (p, s) in enumerate(pieces)]


def train_sentencepiece(texts: Sequence[str], vocab_size: int = 1000) -> PreTrainedTokenizerFast:
    """Train a T5 / mT5 style SentencePiece Unigram tokenizer with byte fallback on ``texts``.

    The pieces come from the ``sentencepiece`` trainer (deterministic); the tokenizer is assembled from the
    ``tokenizers`` library's SentencePiece-style components (Metaspace pre-tokenizer prepending ``▁`` like T5,
    Unigram model with byte fallback, the Llama/T5 decoder chain) so that the result is a fast tokenizer with no
    model file and no conversion step. Characters that no trained piece covers are encoded as UTF-8 byte pieces
    ``<0xNN>``, so any character round-trips. Decoding replaces ``▁`` with spaces, reassembles byte pieces and strips
    the single leading space. Like T5, ``</s>`` is appended to every encoded sequence. No Unicode normalisation is
    applied (T5's NFKC-like charsmap would break the round trip of characters such as "ﬁ").

    Args:
        texts: training texts.
        vocab_size: upper bound on the vocabulary: the 3 specials, the 256 byte pieces and the trained pieces (at
            least one per distinct character of the texts and of printable ASCII).

    Returns:
        A ``PreTrainedTokenizerFast`` with ``pad_token="<pad>"`` (id 0), ``eos_token="</s>"`` (id 1) and
        ``unk_token="<unk>"`` (id 2); no bos, like T5.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    kept = _check_texts(texts, "train_sentencepiece")
    characters = set(PRINTABLE_ASCII).union(*map(set, kept)) - set(" ")
    needed = len(SP_SPECIALS) + N_BYTES + 1 + len(characters)  # specials, bytes, "▁", one piece per character
    if vocab_size < needed:
        raise ValueError(f"train_sentencepiece: vocab_size must be at least {needed} for these texts (3 specials, "
                         f"256 byte pieces, '▁' and {len(characters)} characters), got {vocab_size}")
    vocab = _train_unigram_pieces(kept, vocab_size)
    tok = Tokenizer(models.Unigram(vocab, unk_id=SP_SPECIALS.index("<unk>"), byte_fallback=True))
    tok.add_special_tokens(list(SP_SPECIALS))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Sequence([
        decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0),
    ])
    eos_id = SP_SPECIALS.index("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
    )


def byte_tokenizer() -> PreTrainedTokenizerBase:
    """ByT5's byte tokenizer: ids 0/1/2 are pad/eos/unk, byte b is id b + 3; ``</s>`` is appended on encode.

    ``transformers.ByT5Tokenizer`` needs no vocabulary file (it keeps the 125 ``<extra_id_N>`` sentinels, so ids and
    vocabulary size (384) match the published ByT5 checkpoints); in transformers v5 it is a Python-backend tokenizer
    (not a ``PreTrainedTokenizerFast``) and ``AutoTokenizer.from_pretrained`` reloads it from ``save_pretrained``.
    Incomplete UTF-8 sequences decode to nothing (``errors="ignore"``).

    Returns:
        A ``ByT5Tokenizer`` with ``pad_token="<pad>"``, ``eos_token="</s>"``, ``unk_token="<unk>"``.
    """
    return ByT5Tokenizer()


def train_roberta_bpe(texts: Sequence[str], vocab_size: int = 1000, add_prefix_space: bool = True
                      ) -> PreTrainedTokenizerFast:
    """Train a RoBERTa / Longformer style byte-level BPE tokenizer on ``texts``.

    Like ``roberta-base`` and ``allenai/longformer-base-4096``: special tokens ``<s>`` (0), ``<pad>`` (1), ``</s>``
    (2), ``<unk>`` (3), ``<mask>`` (4); every encoded sequence is ``<s> … </s>``; a ``</s>`` written in the text is
    the special token. ``add_prefix_space=True`` (a space before the first word) is how FineGrainedRLHF loads its
    Longformer tokenizer (``reward_modeling/run_fg_rm.py``) and what word-split input (``is_split_into_words``) needs.

    Args:
        texts: training texts.
        vocab_size: target vocabulary size including the 256 byte symbols and the 5 special tokens.
        add_prefix_space: prepend a space to the first word (each word, for word-split input).

    Returns:
        A ``PreTrainedTokenizerFast`` with bos/cls ``<s>``, eos/sep ``</s>``, pad, unk and mask tokens set.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    kept = _check_texts(texts, "train_roberta_bpe")
    if vocab_size < N_BYTES + len(ROBERTA_SPECIALS):
        raise ValueError(f"train_roberta_bpe: vocab_size must be at least {N_BYTES + len(ROBERTA_SPECIALS)} (bytes + "
                         f"specials), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(ROBERTA_SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(kept, trainer=trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", ROBERTA_SPECIALS.index("</s>")),
                                                      ("<s>", ROBERTA_SPECIALS.index("<s>")),
                                                      trim_offsets=True, add_prefix_space=add_prefix_space)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", cls_token="<s>", eos_token="</s>",
                                   sep_token="</s>", pad_token="<pad>", unk_token="<unk>", mask_token="<mask>",
                                   add_prefix_space=add_prefix_space, clean_up_tokenization_spaces=False)
