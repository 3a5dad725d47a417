"""Corruptions of a reference translation: the imperfect candidates of the tiny task's preference pairs.

Each edit imitates an error a weak translation model makes: a word dropped, repeated or moved, an article or number
(agreement) error, a source word left untranslated, the end cut off. ``corrupt`` applies one or two of them.
"""

from __future__ import annotations

import random
from typing import Callable

Words = list[str]
_END = ".?!"
_SWAPS = {
    "a": "an",
    "an": "a",
    "is": "are",
    "are": "is",
    "does": "do",
    "do": "does",
    "has": "have",
    "have": "has",
    "this": "these",
    "these": "this",
}


def drop_word(words: Words, source: Words, rng: random.Random) -> Words:
    i = rng.randrange(len(words))
    return words[:i] + words[i + 1 :]


def repeat_word(words: Words, source: Words, rng: random.Random) -> Words:
    i = rng.randrange(len(words))
    return words[: i + 1] + words[i:]


def swap_words(words: Words, source: Words, rng: random.Random) -> Words:
    i = rng.randrange(len(words) - 1)
    return words[:i] + [words[i + 1], words[i]] + words[i + 2 :]


def agreement_error(words: Words, source: Words, rng: random.Random) -> Words:
    """Swap a/an, is/are, does/do, has/have, this/these when one occurs; else add or remove a word's final s."""
    swappable = [i for i, w in enumerate(words) if w.lower() in _SWAPS]
    if swappable:
        i = rng.choice(swappable)
        swapped = _SWAPS[words[i].lower()]
        return words[:i] + [swapped.capitalize() if words[i][0].isupper() else swapped] + words[i + 1 :]
    i = rng.randrange(len(words))
    word = words[i]
    return words[:i] + [word[:-1] if word.endswith("s") and len(word) > 2 else word + "s"] + words[i + 1 :]


def untranslated_word(words: Words, source: Words, rng: random.Random) -> Words:
    """Replace a word by a word of the Spanish source."""
    i = rng.randrange(len(words))
    return words[:i] + [rng.choice(source)] + words[i + 1 :]


def truncate(words: Words, source: Words, rng: random.Random) -> Words:
    """Cut the last one or two words."""
    return words[: max(1, len(words) - rng.randint(1, 2))]


EDITS: dict[str, Callable[[Words, Words, random.Random], Words]] = {
    "drop": drop_word,
    "repeat": repeat_word,
    "swap": swap_words,
    "agreement": agreement_error,
    "untranslated": untranslated_word,
    "truncate": truncate,
}


def corrupt(reference: str, source: str, rng: random.Random, max_edits: int = 2, tries: int = 10) -> str:
    """``reference`` with 1 to ``max_edits`` random edits (``EDITS``); the sentence-final punctuation stays at the end
    unless the end was cut off. The result differs from ``reference`` (after ``tries`` attempts a word is dropped).

    Args:
        reference: the reference translation (at least two words for every edit to apply).
        source: the source sentence (untranslated words come from it).
        rng: the random stream.
    """
    body, end = (reference[:-1], reference[-1]) if reference[-1:] in _END else (reference, "")
    words = body.split()
    source_words = [w.strip("¿¡.,?!").lower() for w in source.split() if w.strip("¿¡.,?!")] or words
    if len(words) < 2:
        return reference + " " + rng.choice(source_words)
    for _ in range(tries):
        edited, cut = list(words), False
        for name in rng.sample(sorted(EDITS), rng.randint(1, max_edits)):
            if len(edited) >= 2:
                edited, cut = EDITS[name](edited, source_words, rng), cut or name == "truncate"
        text = " ".join(edited) + ("" if cut else end)
        if text != reference:
            return text
    return " ".join(words[1:]) + end
