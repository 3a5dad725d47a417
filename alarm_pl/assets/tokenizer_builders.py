"""Offline tokenizer builders: tokenizers trained in-process from a list of texts, never downloaded.

The tiny configurations and the tests need tokenizers of the three families the real policies use, without a model
hub:

- ``train_byte_bpe``: GPT-2 style byte-level BPE (decoder-only policies);
- ``train_sentencepiece``: T5 / mT5 style Unigram over ``▁``-marked words with byte fallback (encoder-decoder
  policies). The pieces are trained by the ``sentencepiece`` package (deterministic) and assembled into a fast
  tokenizer from the ``tokenizers`` library's SentencePiece-style components, so no model file is kept;
- ``byte_tokenizer``: ByT5's byte tokenizer (``transformers.ByT5Tokenizer`` needs no files).

The reward-model families and the dummy-weight models (``alarm_pl.assets.dummy``) get a tokenizer of their real
family: the real transformers class with the real special tokens and settings, and a vocabulary trained here
(``sentencepiece`` for the SentencePiece families, the ``tokenizers`` BPE trainer for byte-level BPE):

- ``train_t5_tokenizer``: ``T5Tokenizer`` (T5, mT5): Unigram, ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2, no bos, ``</s>``
  appended, NFKC-style normalisation, no byte fallback (unknown characters become ``<unk>``, as with the real
  vocabularies), optional ``<extra_id_N>`` sentinels at the top of the vocabulary (T5: 100; mT5: none);
- ``train_llama_tokenizer``: ``LlamaTokenizer`` (Llama-2, UltraRM): SentencePiece BPE, ``<unk>`` 0, ``<s>`` 1,
  ``</s>`` 2, byte pieces ``<0x00>``… from id 3, ``<s>`` prepended and nothing appended, digits split, no pad token;
- ``train_roberta_bpe``: ``RobertaTokenizer`` (RoBERTa, Longformer; the FineGrainedRLHF reward models): byte-level
  BPE, ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, ``<mask>`` last, ``<s> … </s>`` around every text, a
  ``</s>`` written in the text is the special token, offsets trimmed of spaces, ``add_prefix_space`` as the
  checkpoint saved it.

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
        raise ValueError(
            f"train_byte_bpe: vocab_size must be at least {N_BYTES + 2} (bytes + specials), got {vocab_size}"
        )
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
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        byte_fallback=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
        required_chars=PRINTABLE_ASCII,
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
        raise ValueError(
            f"train_sentencepiece: vocab_size must be at least {needed} for these texts (3 specials, "
            f"256 byte pieces, '▁' and {len(characters)} characters), got {vocab_size}"
        )
    vocab = _train_unigram_pieces(kept, vocab_size)
    tok = Tokenizer(models.Unigram(vocab, unk_id=SP_SPECIALS.index("<unk>"), byte_fallback=True))
    tok.add_special_tokens(list(SP_SPECIALS))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    eos_id = SP_SPECIALS.index("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>",
        pair="$A </s> $B </s>",
        special_tokens=[("</s>", eos_id)],
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


T5_SPECIALS = SP_SPECIALS
"""T5's and mT5's ids: ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2 (no bos)."""
LLAMA_SPECIALS = ("<unk>", "<s>", "</s>")
"""Llama's ids: ``<unk>`` 0, ``<s>`` 1, ``</s>`` 2 (no pad)."""
ROBERTA_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
"""RoBERTa's (and Longformer's) first ids 0-3; ``<mask>`` is the last id of the vocabulary."""


def _train_spm(texts: Sequence[str], builder: str, vocab_size: int, **settings):
    """Train a SentencePiece model on ``texts``; returns its ``ModelProto`` (pieces, scores, normaliser)."""
    import io

    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    kept = _check_texts(texts, builder)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(kept),
        model_writer=model,
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
        **settings,
    )
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    return proto


def train_t5_tokenizer(texts: Sequence[str], vocab_size: int = 1000, extra_ids: int = 100):
    """A ``transformers.T5Tokenizer`` (T5 / mT5 family) with a Unigram vocabulary trained on ``texts``.

    Trainer settings follow T5's ``spiece.model``: Unigram, pad 0 / eos 1 / unk 2, no bos, SentencePiece's
    ``nmt_nfkc`` normalisation (kept as the tokenizer's precompiled normaliser), no byte fallback.

    Args:
        texts: training texts.
        vocab_size: the whole vocabulary, sentinels included: ``vocab_size - extra_ids`` trained pieces at most.
        extra_ids: ``<extra_id_N>`` sentinels, placed in reverse order at the top (T5: 100, ``<extra_id_0>`` last;
            mT5: 0).

    Raises:
        ValueError: no text, or fewer than 8 ids left for trained pieces (the message gives the numbers).
    """
    from transformers import T5Tokenizer

    pieces = vocab_size - extra_ids
    if pieces < 8:
        raise ValueError(
            f"train_t5_tokenizer: vocab_size {vocab_size} leaves {pieces} ids for trained pieces after "
            f"{extra_ids} sentinels; give a vocab_size of at least {extra_ids + 8}"
        )
    proto = _train_spm(
        texts,
        "train_t5_tokenizer",
        pieces,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        byte_fallback=False,
        normalization_rule_name="nmt_nfkc",
    )
    vocab = [(p.piece, p.score) for p in proto.pieces]
    vocab += [(f"<extra_id_{i}>", 0.0) for i in reversed(range(extra_ids))]
    charsmap = proto.normalizer_spec.precompiled_charsmap or None
    return T5Tokenizer(vocab=vocab, extra_ids=extra_ids, _spm_precompiled_charsmap=charsmap)


def train_llama_tokenizer(texts: Sequence[str], vocab_size: int = 1000):
    """A ``transformers.LlamaTokenizer`` (Llama-2 family) with a SentencePiece BPE vocabulary trained on ``texts``.

    Trainer settings follow Llama-2's ``tokenizer.model``: BPE, unk 0 / bos 1 / eos 2, no pad, byte fallback (the 256
    byte pieces follow the specials), digits split, identity normalisation, whitespace kept. The tokenizer prepends
    ``<s>`` and appends nothing (``add_bos_token=True``, ``add_eos_token=False``), like Llama-2's.

    Args:
        texts: training texts.
        vocab_size: upper bound on the vocabulary (at least 3 specials + 256 bytes + the characters of the texts).
    """
    from transformers import LlamaTokenizer
    from transformers.tokenization_utils_base import generate_merges

    if vocab_size < len(LLAMA_SPECIALS) + N_BYTES + 1:
        raise ValueError(
            f"train_llama_tokenizer: vocab_size must exceed {len(LLAMA_SPECIALS) + N_BYTES} (3 specials "
            f"and 256 byte pieces), got {vocab_size}"
        )
    proto = _train_spm(
        texts,
        "train_llama_tokenizer",
        vocab_size,
        model_type="bpe",
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
    )
    vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    return LlamaTokenizer(
        vocab=vocab, merges=generate_merges(vocab), legacy=False, add_bos_token=True, add_eos_token=False
    )


def train_roberta_bpe(texts: Sequence[str], vocab_size: int = 1000, add_prefix_space: bool = True):
    """A ``transformers.RobertaTokenizer`` (RoBERTa / Longformer family) with a byte-level BPE trained on ``texts``.

    Args:
        texts: training texts.
        vocab_size: the whole vocabulary: ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, the 256 byte symbols,
            the merges, and ``<mask>`` as the last id (as in ``roberta-base``'s and ``longformer-base-4096``'s
            vocabularies, where it is 50264).
        add_prefix_space: add a space before the first word (and before every word of word-split input). True is
            how FineGrainedRLHF loads and saves its token classifiers' tokenizer (``reward_modeling/run_fg_rm.py``)
            and what ``is_split_into_words`` needs; RoBERTa's own default is False.
    """
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import RobertaTokenizer

    kept = _check_texts(texts, "train_roberta_bpe")
    if vocab_size < len(ROBERTA_SPECIALS) + N_BYTES + 1:
        raise ValueError(
            f"train_roberta_bpe: vocab_size must exceed {len(ROBERTA_SPECIALS) + N_BYTES} "
            f"(4 specials and 256 byte symbols, plus <mask>), got {vocab_size}"
        )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)  # merges for the words it sees
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,
        special_tokens=list(ROBERTA_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(kept, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = dict(model["vocab"])
    vocab["<mask>"] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return RobertaTokenizer(vocab=vocab, merges=merges, add_prefix_space=add_prefix_space, trim_offsets=True)
