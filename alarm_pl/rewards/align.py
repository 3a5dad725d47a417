"""Character spans of decoded text ↔ policy response token positions.

Scorers see text; PPO needs rewards on the policy's response tokens. ``decode_with_spans`` decodes a response and
gives every token its ``(start, end)`` character span in the decoded text; the other functions map character spans
(a misspelled word, a sentence) back to token indices.

Span conventions (what every function here assumes, and ``decode_with_spans`` guarantees):

- spans are half-open ``[start, end)`` into the decoded text (special tokens skipped);
- they are monotone: starts and ends never decrease from one token to the next;
- a special token (eos, pad, ...) gets the empty span ``(pos, pos)`` at the current position;
- tokens that only produce part of a character (the UTF-8 bytes of "ñ" or an emoji under byte fallback, byte-level
  BPE or a byte tokenizer) share one span: the characters their group completes together. A SentencePiece word
  piece carries its leading space (``"▁cat"`` spans ``" cat"``), except at the very start where the space is dropped.

Overlap rule: a token overlaps a character span ``[a, b)`` when its span ``[s, e)`` shares at least one character
with it (``s < b and a < e``). Empty spans (special tokens, tokens that produced no text) never overlap anything,
and an empty character span overlaps no token.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Sequence

import torch
from torch import Tensor

from alarm_pl.rewards.base import Span

REPLACEMENT_CHAR = "\ufffd"
"""What byte-level decoders emit for an incomplete UTF-8 sequence."""


def _emit_groups(tokenizer, ids: list[int], special: set[int], context: int) -> tuple[str, list[Span]]:
    """Incremental detokenisation: each token's text, from decoding a short window ending at it.

    Token i's text is ``decode(ids[k:i+1])`` minus ``decode(ids[k:g])``, where g is the first not-yet-emitted token
    and k starts a group about ``context`` tokens earlier (so that SentencePiece's leading-space rule and byte-level
    merges see the same left context in both decodes). A token whose window ends in an incomplete character (text
    unchanged or ending in U+FFFD) stays pending and shares the span of the token that completes it. Cost:
    O(len(ids) · window).

    Returns:
        The concatenated token texts and one span per token into it.
    """
    spans: list[Span] = [(0, 0)] * len(ids)
    group_start = list(range(len(ids)))  # first token of the emitted group each token belongs to
    parts: list[str] = []
    pos, pending = 0, []
    last_real = max((i for i, t in enumerate(ids) if t not in special), default=-1)
    for i, token in enumerate(ids):
        if token in special:
            spans[i] = (pos, pos)
            continue
        pending.append(i)
        g = pending[0]
        k = group_start[max(0, g - context)] if g > 0 else 0
        prev = tokenizer.decode(ids[k:g], skip_special_tokens=True)
        new = tokenizer.decode(ids[k : i + 1], skip_special_tokens=True)
        complete = new.startswith(prev) and len(new) > len(prev) and not new.endswith(REPLACEMENT_CHAR)
        if complete or i == last_real:  # the last real token flushes whatever is still pending
            piece = new[len(prev) :] if new.startswith(prev) else new[_common_prefix(prev, new) :]
            for j in pending:
                spans[j] = (pos, pos + len(piece))
                group_start[j] = g
            parts.append(piece)
            pos += len(piece)
            pending = []
    return "".join(parts), spans


def _common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix of ``a`` and ``b``."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _char_map(src: str, dst: str) -> list[int]:
    """Monotone map from positions in ``src`` to positions in ``dst`` (``len(src) + 1`` entries).

    Used when the token-by-token text differs from the full decode (tokenizers that clean up spaces around
    punctuation, or a lossy decoder at a window edge): equal characters match, whitespace present on one side only
    is skipped, anything else is a substitution. Linear in the lengths.
    """
    mapping = [0] * (len(src) + 1)
    i = j = 0
    while i < len(src):
        mapping[i] = j
        if j < len(dst) and src[i] == dst[j]:
            i, j = i + 1, j + 1
        elif j >= len(dst) or src[i].isspace():
            i += 1
        elif dst[j].isspace():
            j += 1
        else:
            i, j = i + 1, j + 1
    mapping[len(src)] = len(dst)
    return mapping


def decode_with_spans(tokenizer, ids: Sequence[int], context: int = 4) -> tuple[str, list[Span]]:
    """Decode response token ids and give each token its character span in the decoded text.

    Args:
        tokenizer: the policy's Hugging Face tokenizer.
        ids: the real response token ids (no padding; eos and other special tokens allowed).
        context: how many earlier tokens each window includes (4 covers the longest UTF-8 character).

    Returns:
        ``(text, spans)``: ``text == tokenizer.decode(ids, skip_special_tokens=True)`` and one ``(start, end)``
        span per id following the conventions of this module's docstring.
    """
    ids = [int(i) for i in ids]
    text = tokenizer.decode(ids, skip_special_tokens=True)
    concat, spans = _emit_groups(tokenizer, ids, set(tokenizer.all_special_ids), context)
    if concat != text:
        mapping = _char_map(concat, text)
        spans = [(mapping[s], mapping[e]) for s, e in spans]
    return text, spans


class LazyTokenSpans(Sequence[list[Span]]):
    """Each response's token spans (``decode_with_spans``), computed the first time a scorer reads them.

    Decoding a response token by token costs two tokenizer decodes per token; scorers that read only the text (a
    reward model, chrF) never ask for the spans, so they never pay for them.

    Args:
        tokenizer: the policy's tokenizer.
        rows: each response's real token ids.
    """

    def __init__(self, tokenizer, rows: list[list[int]]) -> None:
        self.tokenizer, self.rows = tokenizer, rows
        self._spans: list[list[Span] | None] = [None] * len(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if self._spans[index] is None:
            self._spans[index] = decode_with_spans(self.tokenizer, self.rows[index])[1]
        return self._spans[index]

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)


def decode_batch_with_spans(
    tokenizer, response_ids: Tensor, response_mask: Tensor
) -> tuple[list[str], Sequence[list[Span]]]:
    """Texts and token spans (``decode_with_spans``) of a right-padded batch: the texts decoded in one batched call,
    the spans computed on first access (``LazyTokenSpans``).

    Args:
        tokenizer: the policy's tokenizer.
        response_ids: (B, T) right-padded response ids.
        response_mask: (B, T) bool, ``True`` on real tokens.

    Returns:
        B decoded texts and, for each, ``response_mask[i].sum()`` spans.
    """
    lengths = response_mask.bool().sum(dim=1).tolist()  # (B,)
    rows = [row[:n] for row, n in zip(response_ids.tolist(), lengths)]
    return tokenizer.batch_decode(rows, skip_special_tokens=True), LazyTokenSpans(tokenizer, rows)


def tokens_overlapping(token_spans: Sequence[Span], start: int, end: int) -> list[int]:
    """Indices of the tokens whose span shares a character with ``[start, end)`` (see the overlap rule).

    Args:
        token_spans: monotone token spans of one response.
        start, end: the character span.

    Returns:
        Increasing token indices; empty when the character span is empty or outside the text.
    """
    if end <= start:
        return []
    first = bisect_right(token_spans, start, key=lambda span: span[1])  # first token ending after `start`
    hits = []
    for j in range(first, len(token_spans)):
        s, e = token_spans[j]
        if s >= end:
            break
        if s < e:
            hits.append(j)
    return hits


def char_spans_to_token_mask(token_spans: Sequence[Span], char_spans: Sequence[Span]) -> list[bool]:
    """Mark the tokens that overlap any of ``char_spans``.

    Args:
        token_spans: monotone token spans of one response (T of them).
        char_spans: character spans, any order.

    Returns:
        T booleans, ``True`` where the token overlaps at least one character span.
    """
    marked = [False] * len(token_spans)
    for start, end in char_spans:
        for j in tokens_overlapping(token_spans, start, end):
            marked[j] = True
    return marked


def token_ending_at(token_spans: Sequence[Span], char_end: int, text: str | None = None) -> int:
    """Index of the token that covers the character just before ``char_end`` (e.g. a sentence's last token).

    Args:
        token_spans: monotone token spans of one response.
        char_end: exclusive end of a character span.
        text: the decoded text; when given, whitespace just before ``char_end`` is skipped first, so a span that
            includes trailing spaces still lands on its last visible character (the space would otherwise belong to
            the next word's SentencePiece token).

    Returns:
        The index of the last non-empty token starting before ``char_end``; tokens that share one span (bytes of one
        character) resolve to the last of them.

    Raises:
        ValueError: when no token with text starts before ``char_end``.
    """
    if text is not None:
        char_end = len(text[:char_end].rstrip())
    j = bisect_left(token_spans, char_end, key=lambda span: span[0]) - 1  # last token starting before char_end
    while j >= 0 and token_spans[j][0] == token_spans[j][1]:
        j -= 1
    if j < 0:
        raise ValueError(
            f"token_ending_at: no token with text starts before character {char_end} (spans {list(token_spans[:4])}...)"
        )
    return j


def scatter_token_values(
    mask: Tensor, positions: Sequence[Sequence[int]], values: Sequence[Sequence[float]]
) -> tuple[Tensor, Tensor]:
    """Build a scorer's ``(values, placed)`` tensors from per-response token positions.

    Args:
        mask: (B, T) response mask.
        positions: for each response, token indices (``< mask[i].sum()``) that carry a value.
        values: for each response, one value per position.

    Returns:
        ``values`` (B, T) float32, 0 off the placed positions, and ``placed`` (B, T) bool.
    """
    out = torch.zeros(mask.shape, dtype=torch.float32)  # (B, T)
    placed = torch.zeros(mask.shape, dtype=torch.bool)  # (B, T)
    lengths = mask.bool().sum(dim=1).tolist()  # (B,)
    for i, (pos, val) in enumerate(zip(positions, values)):
        if any(p < 0 or p >= lengths[i] for p in pos):
            raise ValueError(
                f"scatter_token_values: position out of range for response {i} ({lengths[i]} tokens): {sorted(pos)}"
            )
        index = torch.as_tensor(list(pos), dtype=torch.long)
        out[i, index] = torch.as_tensor(list(val), dtype=torch.float32)
        placed[i, index] = True
    return out.to(mask.device), placed.to(mask.device)
