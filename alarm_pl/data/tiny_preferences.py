"""Preference pairs for the tiny task's learned holistic reward model, generated offline from gold signals with
controlled label noise (the testbed of ``docs/ABLATION.md``).

For each prompt of a prompt DataModule's training split, the candidates are: the reference translation, the starting
policy's greedy output, ``num_samples`` of its pure samples (the rollout decoding of ``configs/tiny_mt.yaml``) and
``num_corruptions`` corrupted references (1–2 edits each: a word dropped, repeated or moved, a/an or agreement errors,
a Spanish word left in, the end cut off) and ``num_other`` references of other prompts. Each candidate gets the
**gold score**

    gold = chrF(candidate, reference) − grammar_penalty × (number of Harper grammar lints, spell check off)

and ``pairs_per_prompt`` pairs of candidates whose gold scores differ by at least ``min_margin`` are drawn; the
higher-gold candidate is ``chosen``. In the train and val splits each pair's label is then flipped with probability
``label_noise`` (the record says ``"flipped": true``); the test split keeps the gold labels, so a reward model's test
accuracy is its agreement with the gold ordering. Prompts are split between train/val/test, never shared.

``TinyPreferenceDataModule`` builds the files on first use under ``$ALARM_PL_CACHE/preferences/`` (a hash of the
settings names the directory; ``manifest.json`` holds the settings, counts and realised noise) and reads them as a
``PreferenceDataModule``; ``python -m alarm_pl.data.tiny_preferences --out DIR`` writes them anywhere.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from alarm_pl.data.preferences import PreferenceDataModule, PreferencePair, write_preferences
from alarm_pl.data.tiny_corruptions import corrupt

VERSION = 2  # 2: references of other prompts among the candidates
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TinyPreferenceSpec:
    """How the preference set is generated (every field goes into the cache directory's hash)."""

    policy: str = "tiny:mt-seq2seq"
    """The policy whose greedy output and samples are candidates (the starting policy of the PPO runs)."""
    prompt_data: str = "alarm_pl.data.prompts.TinyMTDataModule"
    """Class path of the PromptDataModule whose ``train`` split gives the prompts and references."""
    prompt_data_args: dict = field(default_factory=lambda: {"num_train": 1500, "seed": 3000})
    """Its arguments."""
    num_samples: int = 2
    """Pure samples of the policy per prompt."""
    num_corruptions: int = 2
    """Corrupted references per prompt."""
    num_other: int = 1
    """References of other prompts per prompt: fluent English that translates another sentence (without them a reward
    model can score fluency while ignoring the source; see docs/ABLATION.md)."""
    pairs_per_prompt: int = 4
    """Pairs drawn per prompt (fewer when fewer pairs clear ``min_margin``)."""
    min_margin: float = 5.0
    """Least gold difference of a pair, in chrF points: closer candidates have no clear preference."""
    grammar_penalty: float = 10.0
    """Gold points one Harper grammar lint costs."""
    label_noise: float = 0.25
    """Probability that a train/val pair's label is flipped (human labellers agree on ~73 % of InstructGPT's
    comparisons, Ouyang et al. 2022, §3.4 and appendix B: about a quarter disagree)."""
    val_share: float = 0.1
    """Share of the prompts whose pairs form the val split."""
    test_share: float = 0.1
    """Share of the prompts whose pairs form the test split (gold labels, no noise)."""
    max_new_tokens: int = 32
    """Longest policy output (``configs/tiny_mt.yaml``'s rollout limit)."""
    batch_size: int = 64
    """Prompts per generation batch."""
    seed: int = 0
    """Sampling, corruption, pairing, noise and prompt split."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_noise < 0.5:
            raise ValueError(
                f"label_noise must be in [0, 0.5) (0.5 would make labels carry nothing), got {self.label_noise}"
            )
        if self.val_share <= 0 or self.test_share <= 0 or self.val_share + self.test_share >= 1:
            raise ValueError(
                f"val_share and test_share must be > 0 with a sum below 1, got {self.val_share}, {self.test_share}"
            )
        if min(self.num_samples, self.num_corruptions, self.num_other) < 0 or self.pairs_per_prompt < 1:
            raise ValueError("num_samples, num_corruptions and num_other must be >= 0 and pairs_per_prompt >= 1")


@dataclass(frozen=True)
class Candidate:
    """One candidate response with its gold score."""

    text: str
    kind: str  # reference | greedy | sample | corrupted | other
    chrf: float
    lints: int
    gold: float


def gold_score(chrf: float, lints: int, grammar_penalty: float) -> float:
    """chrF (0–100) minus ``grammar_penalty`` per grammar lint."""
    return chrf - grammar_penalty * lints


def draw_pairs(
    candidates: list[Candidate], count: int, min_margin: float, rng: random.Random
) -> list[tuple[Candidate, Candidate]]:
    """Up to ``count`` distinct (chosen, rejected) pairs whose gold scores differ by at least ``min_margin``, chosen
    = the higher gold score, drawn uniformly among such pairs."""
    eligible = [
        (a, b) if a.gold > b.gold else (b, a)
        for i, a in enumerate(candidates)
        for b in candidates[i + 1 :]
        if abs(a.gold - b.gold) >= min_margin
    ]
    return rng.sample(eligible, min(count, len(eligible)))


def other_index(index: int, count: int, rng: random.Random) -> int:
    """A record index other than ``index``, uniform over the ``count - 1`` others (``index`` itself when alone)."""
    if count < 2:
        return index
    other = rng.randrange(count - 1)
    return other + (other >= index)


def source_text(prompt: str, metadata: Optional[dict]) -> str:
    """The Spanish source of a tiny-task prompt (its ``metadata["source"]``, else the prompt itself)."""
    return (metadata or {}).get("source") or prompt


def policy_outputs(spec: TinyPreferenceSpec, prompts: list[str]) -> tuple[list[str], list[list[str]]]:
    """The policy's greedy output and ``num_samples`` pure samples for each prompt (seeded by ``spec.seed``)."""
    import torch

    from alarm_pl.config import GenerationConfig, PolicyConfig
    from alarm_pl.models.policy import Policy

    policy = Policy(PolicyConfig(model_name_or_path=spec.policy, lora_r=0), for_ppo=False)
    policy.load()
    policy.model.eval()
    decoding = GenerationConfig(max_new_tokens=spec.max_new_tokens, do_sample=True, top_k=0, top_p=1.0)
    torch.manual_seed(spec.seed)
    greedy, samples = [], [[] for _ in prompts]
    for start in range(0, len(prompts), spec.batch_size):
        ids, mask = policy.tokenize_prompts(prompts[start : start + spec.batch_size], None, torch.device("cpu"))
        greedy += _decode(policy, policy.generate(ids, mask, decoding, do_sample=False))
        for _ in range(spec.num_samples):
            for offset, text in enumerate(_decode(policy, policy.generate(ids, mask, decoding, do_sample=True))):
                samples[start + offset].append(text)
    return greedy, samples


def _decode(policy, generation) -> list[str]:
    ids = generation.response_ids.masked_fill(~generation.response_mask, policy.tokenizer.pad_token_id)
    return [text.strip() for text in policy.tokenizer.batch_decode(ids, skip_special_tokens=True)]


def score_candidates(texts: list[tuple[str, str]], reference: str, linter, penalty: float) -> list[Candidate]:
    """Gold-scored candidates from ``(text, kind)`` pairs (empty and duplicate texts dropped, first kind kept)."""
    import sacrebleu

    unique = {text: kind for text, kind in reversed(texts) if text.strip()}
    candidates = []
    for text, kind in reversed(list(unique.items())):
        chrf = sacrebleu.sentence_chrf(text, [reference]).score
        lints = len(linter.check([text])[0])
        candidates.append(Candidate(text, kind, chrf, lints, gold_score(chrf, lints, penalty)))
    return candidates


def generate(spec: TinyPreferenceSpec) -> tuple[dict[str, list[PreferencePair]], dict]:
    """The three splits' pairs and a summary (counts, realised flip share, kinds, chosen-is-longer share)."""
    import torch

    from alarm_pl.assets.tiny import preserved_rng_states
    from alarm_pl.rewards.aspects.grammar import GrammarScorer

    module_name, _, class_name = spec.prompt_data.rpartition(".")
    data = getattr(importlib.import_module(module_name), class_name)(**spec.prompt_data_args)
    records = data.records("train")
    linter = GrammarScorer(backend="harper", disabled_rules=["SpellCheck"])
    linter.setup(torch.device("cpu"))
    with preserved_rng_states():  # the caller's random streams are not consumed by building the data
        greedy, samples = policy_outputs(spec, [r.prompt for r in records])
    rng = random.Random(spec.seed)
    order = list(range(len(records)))
    rng.shuffle(order)
    n_val, n_test = round(spec.val_share * len(order)), round(spec.test_share * len(order))
    split_of = {i: "val" for i in order[:n_val]} | {i: "test" for i in order[n_val : n_val + n_test]}
    pairs: dict[str, list[PreferencePair]] = {split: [] for split in SPLITS}
    for index, record in enumerate(records):
        source = source_text(record.prompt, record.metadata)
        texts = [(record.reference, "reference"), (greedy[index], "greedy")]
        texts += [(text, "sample") for text in samples[index]]
        texts += [(corrupt(record.reference, source, rng), "corrupted") for _ in range(spec.num_corruptions)]
        texts += [(records[other_index(index, len(records), rng)].reference, "other") for _ in range(spec.num_other)]
        candidates = score_candidates(texts, record.reference, linter, spec.grammar_penalty)
        split = split_of.get(index, "train")
        for chosen, rejected in draw_pairs(candidates, spec.pairs_per_prompt, spec.min_margin, rng):
            flipped = split != "test" and rng.random() < spec.label_noise
            first, second = (rejected, chosen) if flipped else (chosen, rejected)
            meta = {
                "flipped": flipped,
                "gold_margin": round(chosen.gold - rejected.gold, 3),
                "kinds": [first.kind, second.kind],
                "lints": [first.lints, second.lints],
            }
            pairs[split].append(PreferencePair(record.prompt, first.text, second.text, meta))
    linter.teardown()
    return pairs, summarise(pairs)


def summarise(pairs: dict[str, list[PreferencePair]]) -> dict:
    """Per split: pairs, prompts, realised flip share, candidate kinds and how often the chosen text is longer."""
    summary = {}
    for split, items in pairs.items():
        kinds: dict[str, int] = {}
        for pair in items:
            key = "/".join(pair.metadata["kinds"])
            kinds[key] = kinds.get(key, 0) + 1
        n = max(len(items), 1)
        summary[split] = {
            "pairs": len(items),
            "prompts": len({p.prompt for p in items}),
            "flipped_share": sum(p.metadata["flipped"] for p in items) / n,
            "chosen_longer_share": sum(len(p.chosen) > len(p.rejected) for p in items) / n,
            "kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        }
    return summary


def write_set(spec: TinyPreferenceSpec, out: Path) -> dict:
    """Generate the set and write ``train.jsonl``, ``val.jsonl``, ``test.jsonl`` and ``manifest.json`` into the
    directory ``out`` atomically (a temporary sibling renamed into place). Returns the manifest."""
    pairs, summary = generate(spec)
    manifest = {
        "version": VERSION,
        "spec": asdict(spec),
        "splits": summary,
        "gold": "chrF(candidate, reference) - grammar_penalty * Harper lints (SpellCheck off)",
        "test_labels": "gold (no flips)",
        "train_val_labels": f"gold, flipped with p={spec.label_noise}",
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for split in SPLITS:
            write_preferences(tmp / f"{split}.jsonl", pairs[split])
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def cached_set(spec: TinyPreferenceSpec) -> Path:
    """The cache directory of ``spec`` (``$ALARM_PL_CACHE/preferences/tiny-<hash>``), generated when missing. The hash
    covers the settings and the policy's resolved directory (a rebuilt tiny policy gives a new set)."""
    from alarm_pl.assets.cache import cache_dir
    from alarm_pl.models.loading import resolve_model_reference

    policy_dir = resolve_model_reference(spec.policy, "data.init_args.policy")
    key = json.dumps([VERSION, asdict(spec), Path(policy_dir).name], sort_keys=True)
    target = cache_dir() / "preferences" / f"tiny-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    if not (target / "manifest.json").exists():
        write_set(spec, target)
    return target


class TinyPreferenceDataModule(PreferenceDataModule):
    """The tiny task's preference pairs (see the module docstring), generated on first use and cached.

    Args:
        spec: how the pairs are generated.
        batch_size: pairs per training step.
        eval_batch_size: pairs per validation/test batch.
    """

    def __init__(
        self,
        spec: TinyPreferenceSpec = TinyPreferenceSpec(),
        batch_size: int = 32,
        eval_batch_size: Optional[int] = None,
    ) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size)
        self.spec = spec

    def prepare_data(self) -> None:
        cached_set(self.spec)  # once per node, before any process reads

    def split_file(self, split: str) -> str:
        return str(cached_set(self.spec) / f"{split}.jsonl")

    def manifest(self) -> dict:
        """The set's settings, counts and realised noise."""
        return json.loads((cached_set(self.spec) / "manifest.json").read_text(encoding="utf-8"))


def main(argv: Optional[list[str]] = None) -> None:
    """``python -m alarm_pl.data.tiny_preferences --out DIR [--spec.<field> VALUE ...]``: write the tiny task's
    preference set (train/val/test JSON Lines and manifest.json) into ``DIR`` and print its split summary."""
    from jsonargparse import ArgumentParser, set_parsing_settings

    set_parsing_settings(docstring_parse_attribute_docstrings=True)  # the spec's field docstrings become --help
    parser = ArgumentParser(prog="python -m alarm_pl.data.tiny_preferences", description=main.__doc__)
    parser.add_argument("--out", type=str, required=True, help="output directory (replaced if it exists)")
    parser.add_argument("--spec", type=TinyPreferenceSpec, default=TinyPreferenceSpec(), help="how pairs are made")
    args = parser.parse_args(argv)
    spec = args.spec if isinstance(args.spec, TinyPreferenceSpec) else TinyPreferenceSpec(**args.spec.as_dict())
    print(json.dumps(write_set(spec, Path(args.out))["splits"], indent=2))


if __name__ == "__main__":
    main()
