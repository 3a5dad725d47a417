"""Text segmentation shared by the scorers: words, sentences and sub-sentences as character spans.

All functions return half-open ``(start, end)`` spans into the given text, in order, without leading or trailing
whitespace, so that ``alarm_pl.rewards.align.token_ending_at`` lands on a segment's last visible character.

Rules (deliberately simple and predictable; no language model):

- a *word* is a run of letters, optionally joined by apostrophes or hyphens (``don't``, ``well-known``); digits and
  punctuation are not words;
- a *sentence* ends after a run of ``.``, ``!`` or ``?`` (plus closing quotes or brackets) that is followed by
  whitespace and then something other than a lowercase ASCII letter, or by the end of the text; a line break also ends a
  sentence. So "e.g. the cat" stays one sentence but "Dr. Smith" splits (no abbreviation list);
- a *sub-sentence* (FineGrainedRLHF's relevance unit) is a piece of a sentence ending at ``,``, ``;``, ``!`` or
  ``?``; a piece with fewer than ``min_words`` words is merged into the next piece of the same sentence, and a short
  last piece into the previous one.
"""

from __future__ import annotations

import re

from alarm_pl.rewards.base import Span

_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]»]*(?=\s+(?![\sa-z])|\s*$)|\n")
_SUBSENTENCE_END = re.compile(r"[,;!?]+")


def word_spans(text: str) -> list[Span]:
    """Spans of the words of ``text`` (letters, optionally joined by ``'``, ``’`` or ``-``)."""
    return [match.span() for match in _WORD.finditer(text)]


def _strip_span(text: str, start: int, end: int) -> Span | None:
    """The span with surrounding whitespace removed, or None when nothing is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def split_sentences(text: str) -> list[Span]:
    """Sentence spans of ``text`` (see the module docstring for the rule).

    Args:
        text: a decoded response.

    Returns:
        Non-empty, stripped, ordered spans; the text's last sentence may lack final punctuation. Empty for
        whitespace-only text.
    """
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        span = _strip_span(text, start, match.end())
        if span is not None:
            spans.append(span)
        start = match.end()
    tail = _strip_span(text, start, len(text))
    if tail is not None:
        spans.append(tail)
    return spans


def _merge_short(pieces: list[Span], text: str, min_words: int) -> list[Span]:
    """Merge pieces with fewer than ``min_words`` words into the next one (a short last piece into the previous)."""
    merged: list[Span] = []
    pending_start: int | None = None
    for start, end in pieces:
        start = start if pending_start is None else pending_start
        if len(word_spans(text[start:end])) < min_words:
            pending_start = start
            continue
        merged.append((start, end))
        pending_start = None
    if pending_start is not None:
        last_end = pieces[-1][1]
        if merged:
            merged[-1] = (merged[-1][0], last_end)
        else:
            merged.append((pending_start, last_end))
    return merged


def split_subsentences(text: str, min_words: int = 5) -> list[Span]:
    """Sub-sentence spans: each sentence split after ``,;!?``, short pieces merged (FineGrainedRLHF relevance units).

    Args:
        text: a decoded response.
        min_words: minimum number of words of a piece; shorter pieces are merged as the module docstring says.
            A sentence shorter than this stays one piece.

    Returns:
        Non-empty, stripped, ordered spans covering every sentence.
    """
    spans: list[Span] = []
    for s_start, s_end in split_sentences(text):
        pieces, start = [], s_start
        for match in _SUBSENTENCE_END.finditer(text, s_start, s_end):
            span = _strip_span(text, start, match.end())
            if span is not None:
                pieces.append(span)
            start = match.end()
        tail = _strip_span(text, start, s_end)
        if tail is not None:
            pieces.append(tail)
        spans.extend(_merge_short(pieces, text, min_words))
    return spans
