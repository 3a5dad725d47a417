"""A tiny Spanish→English translation task the project owns, deterministic by seed, with room for RL to improve.

Sentences come from a small grammar whose English side must get right what a small model learns only partly from a
few hundred examples: subject–verb agreement (``come``/``comen`` → ``eats``/``eat``), Spanish adjectives after the
noun and agreeing with it (``una camisa roja`` → ``a red shirt``), ``a``/``an``, and do-support in negations and
questions (``¿Qué come el perro?`` → ``What does the dog eat?``). Words are drawn with Zipf-like frequencies (weight
1/(rank+1) within each word list), so rare words are seen only a few times in a small supervised set.

The supervised stage learns from sloppy demonstrations (``sloppy``: ``do`` for ``does``, the bare verb for the
third person, ``a`` for ``an``, each mostly wrong in the tiny SFT recipe) while the reward compares with correct
references: the situation RL from feedback is for, where the feedback knows better than the demonstrations. A
converged SFT policy then still makes these systematic errors on held-out prompts, and RL has something real to
fix that no change of length can buy.

Every distinct Spanish sentence belongs to exactly one **pool**, fixed by a hash of its text: ``sft`` (the labelled
examples of the supervised stage), ``rl`` (the prompts of PPO), ``val`` and ``test``. Pools never share a sentence, so
held-out scores are held out from both stages, and PPO trains on prompts the supervised stage never saw, as the paper's
QA policy was SFT'd on 1k examples and then trained with RL on the whole training split.
"""

from __future__ import annotations

import hashlib
import random
from typing import Iterator, NamedTuple

PROMPT_PREFIX = "translate Spanish to English: "

POOLS: dict[str, tuple[float, float]] = {"sft": (0.0, 0.2), "rl": (0.2, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}
"""Each pool's share of the hash space [0, 1): a sentence whose hash falls in [lo, hi) belongs to that pool."""


class Noun(NamedTuple):
    es: str
    es_plural: str
    feminine: bool
    en: str
    en_plural: str


class Verb(NamedTuple):
    es: str
    es_plural: str
    en: str  # third person singular
    en_base: str  # plural and after does/do


class Adjective(NamedTuple):
    masculine: str
    feminine: str
    masculine_plural: str
    feminine_plural: str
    en: str


def _n(es, es_plural, gender, en, en_plural):
    return Noun(es, es_plural, gender == "f", en, en_plural)


# Lists are ordered by frequency rank (first = most frequent).
SUBJECTS = [
    _n("perro", "perros", "m", "dog", "dogs"),
    _n("niña", "niñas", "f", "girl", "girls"),
    _n("profesor", "profesores", "m", "teacher", "teachers"),
    _n("mujer", "mujeres", "f", "woman", "women"),
    _n("niño", "niños", "m", "boy", "boys"),
    _n("gato", "gatos", "m", "cat", "cats"),
    _n("hermano", "hermanos", "m", "brother", "brothers"),
    _n("médica", "médicas", "f", "doctor", "doctors"),
    _n("hombre", "hombres", "m", "man", "men"),
    _n("vecino", "vecinos", "m", "neighbour", "neighbours"),
    _n("hermana", "hermanas", "f", "sister", "sisters"),
    _n("abuela", "abuelas", "f", "grandmother", "grandmothers"),
    _n("pintor", "pintores", "m", "painter", "painters"),
    _n("caballo", "caballos", "m", "horse", "horses"),
    _n("cocinero", "cocineros", "m", "cook", "cooks"),
    _n("enfermera", "enfermeras", "f", "nurse", "nurses"),
    _n("amigo", "amigos", "m", "friend", "friends"),
    _n("reina", "reinas", "f", "queen", "queens"),
    _n("pájaro", "pájaros", "m", "bird", "birds"),
    _n("vaca", "vacas", "f", "cow", "cows"),
    _n("músico", "músicos", "m", "musician", "musicians"),
    _n("escritora", "escritoras", "f", "writer", "writers"),
]
VERBS = [
    Verb("come", "comen", "eats", "eat"),
    Verb("quiere", "quieren", "wants", "want"),
    Verb("tiene", "tienen", "has", "have"),
    Verb("ve", "ven", "sees", "see"),
    Verb("compra", "compran", "buys", "buy"),
    Verb("lee", "leen", "reads", "read"),
    Verb("busca", "buscan", "looks for", "look for"),
    Verb("bebe", "beben", "drinks", "drink"),
    Verb("lleva", "llevan", "carries", "carry"),
    Verb("vende", "venden", "sells", "sell"),
    Verb("encuentra", "encuentran", "finds", "find"),
    Verb("necesita", "necesitan", "needs", "need"),
    Verb("abre", "abren", "opens", "open"),
    Verb("limpia", "limpian", "cleans", "clean"),
    Verb("pinta", "pintan", "paints", "paint"),
    Verb("prepara", "preparan", "prepares", "prepare"),
    Verb("cierra", "cierran", "closes", "close"),
    Verb("mira", "miran", "watches", "watch"),
]
OBJECTS = [
    _n("libro", "libros", "m", "book", "books"),
    _n("manzana", "manzanas", "f", "apple", "apples"),
    _n("casa", "casas", "f", "house", "houses"),
    _n("carta", "cartas", "f", "letter", "letters"),
    _n("coche", "coches", "m", "car", "cars"),
    _n("café", "cafés", "m", "coffee", "coffees"),
    _n("mesa", "mesas", "f", "table", "tables"),
    _n("periódico", "periódicos", "m", "newspaper", "newspapers"),
    _n("naranja", "naranjas", "f", "orange", "oranges"),
    _n("bicicleta", "bicicletas", "f", "bicycle", "bicycles"),
    _n("puerta", "puertas", "f", "door", "doors"),
    _n("sopa", "sopas", "f", "soup", "soups"),
    _n("camisa", "camisas", "f", "shirt", "shirts"),
    _n("huevo", "huevos", "m", "egg", "eggs"),
    _n("silla", "sillas", "f", "chair", "chairs"),
    _n("ventana", "ventanas", "f", "window", "windows"),
    _n("flor", "flores", "f", "flower", "flowers"),
    _n("sombrero", "sombreros", "m", "hat", "hats"),
    _n("caja", "cajas", "f", "box", "boxes"),
    _n("llave", "llaves", "f", "key", "keys"),
    _n("botella", "botellas", "f", "bottle", "bottles"),
    _n("zapato", "zapatos", "m", "shoe", "shoes"),
    _n("pelota", "pelotas", "f", "ball", "balls"),
    _n("reloj", "relojes", "m", "clock", "clocks"),
    _n("lápiz", "lápices", "m", "pencil", "pencils"),
    _n("cuchara", "cucharas", "f", "spoon", "spoons"),
    _n("vaso", "vasos", "m", "glass", "glasses"),
    _n("plato", "platos", "m", "plate", "plates"),
    _n("cuadro", "cuadros", "m", "painting", "paintings"),
    _n("árbol", "árboles", "m", "tree", "trees"),
]
OBJECT_ADJECTIVES = [
    Adjective("rojo", "roja", "rojos", "rojas", "red"),
    Adjective("nuevo", "nueva", "nuevos", "nuevas", "new"),
    Adjective("viejo", "vieja", "viejos", "viejas", "old"),
    Adjective("grande", "grande", "grandes", "grandes", "big"),
    Adjective("pequeño", "pequeña", "pequeños", "pequeñas", "small"),
    Adjective("blanco", "blanca", "blancos", "blancas", "white"),
    Adjective("verde", "verde", "verdes", "verdes", "green"),
    Adjective("bonito", "bonita", "bonitos", "bonitas", "pretty"),
    Adjective("negro", "negra", "negros", "negras", "black"),
    Adjective("azul", "azul", "azules", "azules", "blue"),
    Adjective("caro", "cara", "caros", "caras", "expensive"),
    Adjective("limpio", "limpia", "limpios", "limpias", "clean"),
    Adjective("sucio", "sucia", "sucios", "sucias", "dirty"),
    Adjective("barato", "barata", "baratos", "baratas", "cheap"),
]
SUBJECT_ADJECTIVES = [
    Adjective("feliz", "feliz", "felices", "felices", "happy"),
    Adjective("alto", "alta", "altos", "altas", "tall"),
    Adjective("cansado", "cansada", "cansados", "cansadas", "tired"),
    Adjective("simpático", "simpática", "simpáticos", "simpáticas", "kind"),
    Adjective("listo", "lista", "listos", "listas", "clever"),
    Adjective("tranquilo", "tranquila", "tranquilos", "tranquilas", "calm"),
    Adjective("enfadado", "enfadada", "enfadados", "enfadadas", "angry"),
    Adjective("rápido", "rápida", "rápidos", "rápidas", "fast"),
    Adjective("ocupado", "ocupada", "ocupados", "ocupadas", "busy"),
    Adjective("viejo", "vieja", "viejos", "viejas", "old"),
]
ADVERBIALS = [
    ("hoy", "today"),
    ("en casa", "at home"),
    ("cada día", "every day"),
    ("por la mañana", "in the morning"),
    ("en el parque", "in the park"),
    ("por la noche", "at night"),
    ("en la cocina", "in the kitchen"),
    ("otra vez", "again"),
    ("despacio", "slowly"),
    ("en el mercado", "at the market"),
]
# (masculine, feminine, masculine plural, feminine plural) -> English singular, English plural
DETERMINERS = [
    (("el", "la", "los", "las"), "the", "the"),
    (("un", "una", "unos", "unas"), "a", "some"),
    (("mi", "mi", "mis", "mis"), "my", "my"),
    (("nuestro", "nuestra", "nuestros", "nuestras"), "our", "our"),
    (("este", "esta", "estos", "estas"), "this", "these"),
]


def _pick(rng: random.Random, items: list):
    """A Zipf-like draw: the item of rank r has weight 1 / (r + 1)."""
    return rng.choices(items, weights=[1.0 / (rank + 1) for rank in range(len(items))])[0]


def _form(forms: tuple[str, str, str, str], feminine: bool, plural: bool) -> str:
    return forms[2 * plural + feminine]


def _noun_phrase(rng: random.Random, nouns: list[Noun], adjective_share: float) -> tuple[str, str, bool]:
    """(Spanish, English, plural) of a determiner + noun (+ adjective) phrase."""
    noun, plural = _pick(rng, nouns), rng.random() < 0.3
    forms, en_singular, en_plural = _pick(rng, DETERMINERS)
    es = f"{_form(forms, noun.feminine, plural)} {noun.es_plural if plural else noun.es}"
    en_words = [noun.en_plural if plural else noun.en]
    if rng.random() < adjective_share:
        adjective = _pick(rng, OBJECT_ADJECTIVES)
        es += " " + _form(adjective[:4], noun.feminine, plural)
        en_words.insert(0, adjective.en)
    determiner = en_plural if plural else en_singular
    if determiner == "a" and en_words[0][0] in "aeiou":
        determiner = "an"
    return es, " ".join([determiner, *en_words]), plural


def _adverbial(rng: random.Random) -> tuple[str, str]:
    return _pick(rng, ADVERBIALS) if rng.random() < 0.5 else ("", "")


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _action(rng: random.Random) -> tuple[str, str]:
    subj_es, subj_en, plural = _noun_phrase(rng, SUBJECTS, 0.0)
    verb = _pick(rng, VERBS)
    obj_es, obj_en, _ = _noun_phrase(rng, OBJECTS, 0.4)
    adv_es, adv_en = _adverbial(rng)
    if rng.random() < 0.2:  # negation: do-support and the bare verb in English
        es = _join(subj_es, "no", verb.es_plural if plural else verb.es, obj_es, adv_es)
        en = _join(subj_en, "do not" if plural else "does not", verb.en_base, obj_en, adv_en)
    else:
        es = _join(subj_es, verb.es_plural if plural else verb.es, obj_es, adv_es)
        en = _join(subj_en, verb.en_base if plural else verb.en, obj_en, adv_en)
    return _capitalise(es) + ".", _capitalise(en) + "."


def _description(rng: random.Random) -> tuple[str, str]:
    noun, plural = _pick(rng, SUBJECTS), rng.random() < 0.3
    forms, en_singular, en_plural = _pick(rng, DETERMINERS[:1] + DETERMINERS[2:])  # no indefinite subject here
    adjective = _pick(rng, SUBJECT_ADJECTIVES)
    es = _join(
        _form(forms, noun.feminine, plural),
        noun.es_plural if plural else noun.es,
        "son" if plural else "es",
        _form(adjective[:4], noun.feminine, plural),
    )
    en = _join(
        en_plural if plural else en_singular,
        noun.en_plural if plural else noun.en,
        "are" if plural else "is",
        adjective.en,
    )
    return _capitalise(es) + ".", _capitalise(en) + "."


def _question(rng: random.Random) -> tuple[str, str]:
    subj_es, subj_en, plural = _noun_phrase(rng, SUBJECTS, 0.0)
    if rng.random() < 0.5:
        return f"¿Dónde {'están' if plural else 'está'} {subj_es}?", f"Where {'are' if plural else 'is'} {subj_en}?"
    verb = _pick(rng, VERBS)
    es = f"¿Qué {verb.es_plural if plural else verb.es} {subj_es}?"
    return es, f"What {'do' if plural else 'does'} {subj_en} {verb.en_base}?"


def sentence_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (spanish, english) pairs, deterministic for a seed (65 % actions, 20 % descriptions, 15 % questions);
    pairs may repeat and belong to any pool."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        u = rng.random()
        make = _action if u < 0.65 else _description if u < 0.85 else _question
        pairs.append(make(rng))
    return pairs


def pool_of(spanish: str) -> str:
    """The pool (``sft``, ``rl``, ``val`` or ``test``) a Spanish sentence belongs to, fixed by a hash of its text."""
    position = int.from_bytes(hashlib.sha256(spanish.encode("utf-8")).digest()[:8], "big") / 2**64  # [0, 1)
    return next(name for name, (lo, hi) in POOLS.items() if lo <= position < hi)


def unique_pairs(n: int, pool: str, seed: int = 0, max_draws_per_pair: int = 200) -> list[tuple[str, str]]:
    """``n`` distinct (spanish, english) pairs of one pool (prompts are matched by text in evaluation, so a pool
    holds each sentence once).

    Raises:
        ValueError: an unknown pool, or fewer than ``n`` distinct sentences found in ``n · max_draws_per_pair`` draws
            (the grammar has far more than any configuration asks for; this stops a runaway request).
    """
    if pool not in POOLS:
        raise ValueError(f"unknown tiny_mt pool {pool!r}; expected one of {list(POOLS)}")
    rng, pairs, seen = random.Random(f"{pool}:{seed}"), [], set()
    for _ in range(max(n, 1) * max_draws_per_pair):
        if len(pairs) == n:
            return pairs
        u = rng.random()
        es, en = (_action if u < 0.65 else _description if u < 0.85 else _question)(rng)
        if es not in seen and pool_of(es) == pool:
            seen.add(es)
            pairs.append((es, en))
    if len(pairs) < n:
        raise ValueError(f"tiny_mt: found only {len(pairs)} distinct sentences of pool {pool!r}, {n} were asked for")
    return pairs


_THIRD_PERSON = {verb.en: verb.en_base for verb in VERBS}


def sloppy(english: str, share: float, rng: random.Random) -> str:
    """The reference as a hurried translator writes it: each place where English needs ``does`` (``do`` instead),
    a third-person ``-s`` (the bare verb instead) or ``an`` (``a`` instead) is written wrongly with probability
    ``share``, independently. The sentence keeps its length in words and its meaning."""
    words, out, i = english.split(" "), [], 0
    while i < len(words):
        word, pair = words[i], " ".join(words[i : i + 2])
        if pair in _THIRD_PERSON and rng.random() < share:  # "looks for" -> "look for"
            out.extend(_THIRD_PERSON[pair].split(" "))
            i += 2
            continue
        if word in _THIRD_PERSON and rng.random() < share:
            word = _THIRD_PERSON[word]
        elif word in ("does", "an", "An") and rng.random() < share:
            word = {"does": "do", "an": "a", "An": "A"}[word]
        out.append(word)
        i += 1
    return " ".join(out)


def records(n: int, pool: str, seed: int = 0, sloppy_share: float = 0.0) -> Iterator[dict]:
    """``n`` prompt records of one pool with distinct prompts, in the JSONL format (``prompt``, ``reference``,
    ``metadata``); ``sloppy_share`` > 0 writes the references sloppily (``sloppy``), deterministically per sentence."""
    for i, (es, en) in enumerate(unique_pairs(n, pool, seed)):
        if sloppy_share > 0:
            en = sloppy(en, sloppy_share, random.Random(f"sloppy:{seed}:{es}"))
        yield {
            "prompt": PROMPT_PREFIX + es,
            "reference": en,
            "metadata": {"source": es, "index": i, "pool": pool, "seed": seed},
        }


def corpus(n: int = 4000, seed: int = 0) -> list[str]:
    """Text to train the tiny tokenizers on: prompts and references of the task (every pool; a tokenizer is not a
    translation model), plus every word of the lexicon once so rare words have pieces."""
    texts = []
    for es, en in sentence_pairs(n, seed):
        texts.extend((PROMPT_PREFIX + es, en))
    lexicon = [word for noun in SUBJECTS + OBJECTS for word in noun if isinstance(word, str)]
    lexicon += [word for verb in VERBS for word in verb] + [
        word for adj in OBJECT_ADJECTIVES + SUBJECT_ADJECTIVES for word in adj
    ]
    lexicon += [word for pair in ADVERBIALS for word in pair]
    texts.append(" ".join(lexicon))
    return texts
