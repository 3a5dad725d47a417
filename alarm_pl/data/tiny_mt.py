"""A tiny Spanish→English translation task the project owns: simple sentence pairs, deterministic by seed.

Sentences come from a small grammar (subject, verb, object, adverbial; "X is ADJ"; "where is X?") with agreement, so
a few-hundred-thousand-parameter model can learn it on a CPU in seconds while leaving room for RL to improve it.
"""

from __future__ import annotations

import random
from typing import Iterator

PROMPT_PREFIX = "translate Spanish to English: "

# (spanish, english, gender) — gender drives adjective agreement.
_SUBJECTS = [
    ("el perro", "the dog", "m"), ("la niña", "the girl", "f"), ("mi hermano", "my brother", "m"),
    ("el profesor", "the teacher", "m"), ("la mujer", "the woman", "f"), ("el niño", "the boy", "m"),
    ("nuestro vecino", "our neighbour", "m"), ("la médica", "the doctor", "f"), ("el gato", "the cat", "m"),
    ("mi madre", "my mother", "f"), ("su abuela", "her grandmother", "f"), ("el pintor", "the painter", "m"),
]
_VERBS = [
    ("come", "eats"), ("bebe", "drinks"), ("lee", "reads"), ("compra", "buys"), ("busca", "looks for"),
    ("quiere", "wants"), ("ve", "sees"), ("tiene", "has"), ("cocina", "cooks"), ("escribe", "writes"),
]
_OBJECTS = [
    ("una manzana", "an apple"), ("el pan", "the bread"), ("un libro", "a book"), ("la carta", "the letter"),
    ("agua", "water"), ("una casa nueva", "a new house"), ("el periódico", "the newspaper"), ("un café", "a coffee"),
    ("la sopa", "the soup"), ("una bicicleta", "a bicycle"), ("tres naranjas", "three oranges"),
]
_ADVERBIALS = [
    ("", ""), ("hoy", "today"), ("en casa", "at home"), ("por la mañana", "in the morning"),
    ("cada día", "every day"), ("en el parque", "in the park"),
]
# (masculine, feminine, english)
_ADJECTIVES = [
    ("alto", "alta", "tall"), ("feliz", "feliz", "happy"), ("cansado", "cansada", "tired"),
    ("simpático", "simpática", "kind"), ("rápido", "rápida", "fast"), ("pequeño", "pequeña", "small"),
    ("listo", "lista", "clever"), ("tranquilo", "tranquila", "calm"),
]


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _action(rng: random.Random) -> tuple[str, str]:
    subj_es, subj_en, _ = rng.choice(_SUBJECTS)
    verb_es, verb_en = rng.choice(_VERBS)
    obj_es, obj_en = rng.choice(_OBJECTS)
    adv_es, adv_en = rng.choice(_ADVERBIALS)
    es = " ".join(part for part in (subj_es, verb_es, obj_es, adv_es) if part)
    en = " ".join(part for part in (subj_en, verb_en, obj_en, adv_en) if part)
    return _capitalise(es) + ".", _capitalise(en) + "."


def _description(rng: random.Random) -> tuple[str, str]:
    subj_es, subj_en, gender = rng.choice(_SUBJECTS)
    masc, fem, adj_en = rng.choice(_ADJECTIVES)
    adj_es = masc if gender == "m" else fem
    return _capitalise(f"{subj_es} es {adj_es}") + ".", _capitalise(f"{subj_en} is {adj_en}") + "."


def _question(rng: random.Random) -> tuple[str, str]:
    subj_es, subj_en, _ = rng.choice(_SUBJECTS)
    return f"¿Dónde está {subj_es}?", f"Where is {subj_en}?"


def sentence_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (spanish, english) pairs, deterministic for a seed (60 % actions, 25 % descriptions, 15 % questions)."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        u = rng.random()
        make = _action if u < 0.6 else _description if u < 0.85 else _question
        pairs.append(make(rng))
    return pairs


def unique_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` distinct (spanish, english) pairs (prompts are matched by text in evaluation, so a split holds each
    once); the grammar has about 8,000 distinct sentences."""
    rng_seed, pairs, seen = seed, [], set()
    while len(pairs) < n:
        for pair in sentence_pairs(n, rng_seed):
            if pair[0] not in seen and len(pairs) < n:
                seen.add(pair[0])
                pairs.append(pair)
        rng_seed += 7919  # another stream until enough distinct sentences are found
    return pairs


def records(n: int, seed: int = 0) -> Iterator[dict]:
    """``n`` prompt records with distinct prompts, in the JSONL format (``prompt``, ``reference``, ``metadata``)."""
    for i, (es, en) in enumerate(unique_pairs(n, seed)):
        yield {"prompt": PROMPT_PREFIX + es, "reference": en, "metadata": {"source": es, "index": i, "seed": seed}}


def corpus(n: int = 4000, seed: int = 0) -> list[str]:
    """Text to train the tiny tokenizers on: prompts and references of the task."""
    texts = []
    for es, en in sentence_pairs(n, seed):
        texts.extend((PROMPT_PREFIX + es, en))
    return texts
