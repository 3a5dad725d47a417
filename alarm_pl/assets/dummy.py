"""Dummy weights: a model's real architecture with seeded random weights, built offline (vLLM's
``load_format="dummy"``).

A configuration names one wherever a model path goes, as ``dummy:<architecture>``:

- ``dummy:mt5-base``, ``dummy:t5-large``, ``dummy:ultrarm-13b``, ``dummy:fgrlhf-factuality``,
  ``dummy:fgrlhf-relevance``, ``dummy:fgrlhf-completeness``: the architectures of the models the paper's configs name,
  shipped as JSON in ``assets/architectures/`` (where every number comes from: the README there);
- ``dummy:/path/to/config.json`` or ``dummy:/path/to/dir`` (holding ``config.json``): any architecture of a supported
  tokenizer family (T5/mT5, Llama, RoBERTa/Longformer).

``dummy_overrides`` (a mapping of config.json keys, e.g. ``{num_layers: 2, d_model: 64}``) shrinks the architecture
while keeping its model class, so that a CPU can run it. On first use a checkpoint directory is written under
``$ALARM_PL_CACHE/dummy/`` — ``config.json``, safetensors weights from the model's own initialisation (seeded by the
content: the same reference and overrides give the same weights everywhere), a tokenizer of the model's family trained
on text the project ships (``tokenizer_builders``), sized to the model's vocabulary — and then loaded through exactly
the path of a real checkpoint (``from_pretrained``, quantization, ``key_mapping``). UltraRM's checkpoint keeps its own
head name (``regression_head``), so the ``key_mapping`` of the paper's config is exercised.

Size: an architecture with more than ``LARGE_DUMMY_PARAMS`` parameters (UltraRM-13B at full size) is never
materialised on a CPU: without CUDA, or when it is to be loaded on the CPU, it is refused with a message that says how
to shrink it; with CUDA it is initialised on the GPU (it needs its full unquantized size in free GPU memory once,
26 GB for the 13B model in fp16) and written to disk in shards (the same 26 GB on disk, then cached).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Mapping, Optional

import torch

from alarm_pl.assets.cache import build_once, cache_dir
from alarm_pl.assets.tiny import preserved_rng_states

DUMMY_SCHEME = "dummy:"
ARCHITECTURES_DIR = Path(__file__).parent / "architectures"
QA_SAMPLE = Path(__file__).parent / "qa_feedback" / "dev_sample.json"
LARGE_DUMMY_PARAMS = 2_000_000_000
"""Above this many parameters a dummy is built on CUDA only (T5-large has 0.74 B, UltraRM-13B 13 B)."""
TOKENIZER_MAX_VOCAB = 8000
"""Largest dummy tokenizer: the shipped texts (~0.5 MB) support a few thousand pieces; larger model vocabularies
keep their size and leave the rows above the tokenizer unused, as T5's 32,128 rows do over its 32,100 tokens."""
SHARD_SIZE = "5GB"
_VERSION = 2  # 2: RoBERTa-family merges learnt with the saved add_prefix_space
Head = Literal["lm", "sequence", "token"]
_FAMILIES = {
    "t5": ("t5", 100),
    "mt5": ("t5", 0),
    "llama": ("llama", 0),
    "roberta": ("roberta", 0),
    "longformer": ("roberta", 0),
}
"""model_type → (tokenizer family, default sentinels) for ``dummy:<path>`` architectures."""


@dataclass(frozen=True)
class Architecture:
    """One dummy architecture: the config.json fields, its tokenizer and how its checkpoint names weights.

    Attributes:
        name: the shipped name (``mt5-base``) or the config file path.
        config: config.json fields (``model_type`` included).
        tokenizer: ``{"family": "t5" | "llama" | "roberta", ...}`` plus the family's options (``extra_ids``,
            ``add_prefix_space``, ``model_max_length``).
        checkpoint_renames: regex → replacement applied to the weight names written (UltraRM: ``score.`` →
            ``regression_head.``).
    """

    name: str
    config: dict
    tokenizer: dict
    checkpoint_renames: dict = field(default_factory=dict)


def shipped_architectures() -> list[str]:
    """Names usable as ``dummy:<name>`` (the JSON files of ``assets/architectures/``)."""
    return sorted(p.stem for p in ARCHITECTURES_DIR.glob("*.json"))


def load_architecture(spec: str, what: str) -> Architecture:
    """The architecture named by ``spec`` (what follows ``dummy:``), see the module docstring.

    Raises:
        ValueError: an unknown name, a config without ``model_type``, or a model type without a tokenizer family.
        FileNotFoundError: a path that does not exist or holds no config.json.
    """
    if spec in shipped_architectures():
        data = json.loads((ARCHITECTURES_DIR / f"{spec}.json").read_text(encoding="utf-8"))
        return Architecture(spec, data["config"], data["tokenizer"], data.get("checkpoint_renames", {}))
    if "/" not in spec and not spec.endswith(".json"):
        raise ValueError(
            f"{what}: unknown dummy architecture 'dummy:{spec}'; shipped: {shipped_architectures()}, "
            f"or give 'dummy:/path/to/config.json'"
        )
    path = Path(spec).expanduser()
    path = path / "config.json" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(
            f"{what}: 'dummy:{spec}': {path} does not exist (give a config.json or a directory holding one)"
        )
    config = json.loads(path.read_text(encoding="utf-8"))
    model_type = config.get("model_type")
    if model_type not in _FAMILIES:
        raise ValueError(
            f"{what}: {path}: model_type {model_type!r} has no dummy tokenizer family; supported: {sorted(_FAMILIES)}"
        )
    family, extra_ids = _FAMILIES[model_type]
    return Architecture(str(path), config, {"family": family, "extra_ids": extra_ids})


def with_overrides(arch: Architecture, overrides: Optional[Mapping[str, Any]], what: str) -> Architecture:
    """``arch`` with config.json keys replaced (shrinking: layers, widths, heads, vocabulary).

    Raises:
        ValueError: a key the model type's config does not have, or ``model_type`` itself (the class must stay).
    """
    if not overrides:
        return arch
    from transformers import AutoConfig

    defaults = AutoConfig.for_model(arch.config["model_type"]).to_dict()
    unknown = sorted(k for k in overrides if k not in defaults and k not in arch.config)
    if "model_type" in overrides or unknown:
        bad = ["model_type"] if "model_type" in overrides else unknown
        raise ValueError(
            f"{what}: dummy_overrides keys {bad} are not config.json keys of model_type "
            f"{arch.config['model_type']!r} (or change the model class); known keys include "
            f"{sorted(k for k in defaults if not k.startswith('_'))[:40]}"
        )
    return replace(arch, config={**arch.config, **dict(overrides)})


def hf_config(arch: Architecture):
    """The transformers config object of ``arch`` (derived fields such as Llama's ``head_dim`` computed from the
    possibly overridden ones)."""
    from transformers import AutoConfig

    fields = {k: v for k, v in arch.config.items() if k != "model_type"}
    return AutoConfig.for_model(arch.config["model_type"], **fields)


def model_class(config, head: Head):
    """The Auto class that loads ``head`` for ``config``: ``lm`` → Seq2SeqLM or CausalLM by ``is_encoder_decoder``;
    ``sequence`` / ``token`` → the sequence / token classification heads."""
    import transformers

    if head == "lm":
        name = "AutoModelForSeq2SeqLM" if config.is_encoder_decoder else "AutoModelForCausalLM"
    else:
        name = "AutoModelForSequenceClassification" if head == "sequence" else "AutoModelForTokenClassification"
    return getattr(transformers, name)


def instantiate(arch: Architecture, head: Head, device: str = "meta", dtype: Optional[torch.dtype] = None):
    """``arch`` with ``head`` initialised by its own weight initialisation on ``device`` (``meta``: no memory).

    An output embedding that the architecture declares untied (``tie_word_embeddings: false``, mT5) gets weights of
    its own, drawn like the input embedding's: transformers ≥ 5 builds T5-family models tied and unties them only when
    a checkpoint holds both matrices with different values, as mT5's does.
    """
    config = hf_config(arch)
    with torch.device(device):
        model = model_class(config, head).from_config(config, dtype=dtype)
        inputs, outputs = model.get_input_embeddings(), model.get_output_embeddings()
        if arch.config.get("tie_word_embeddings") is False and outputs is not None and outputs.weight is inputs.weight:
            std = 1.0 if device == "meta" else float(inputs.weight.detach().float().std())
            outputs.weight = torch.nn.Parameter(torch.empty_like(inputs.weight).normal_(0.0, std))
    return model


def parameter_count(arch: Architecture, head: Head) -> int:
    """Parameters of ``arch`` with ``head``, counted on the meta device (nothing is allocated)."""
    return sum(p.numel() for p in instantiate(arch, head).parameters())


def dummy_corpus() -> list[str]:
    """Text the project ships, for the dummy tokenizers: the tiny MT task (Spanish and English) and the QA-Feedback
    sample's prompts (questions with Wikipedia passages) and answers."""
    from alarm_pl.data.tiny_mt import corpus

    records = json.loads(QA_SAMPLE.read_text(encoding="utf-8"))
    return corpus(4000, seed=0) + [r["text"] for r in records] + [a for r in records for a in r["answer"]]


def dummy_tokenizer(spec: Mapping[str, Any], vocab_size: int):
    """The tokenizer of ``spec["family"]`` trained on ``dummy_corpus()`` with at most ``vocab_size`` ids."""
    from alarm_pl.assets import tokenizer_builders as tb

    texts, size = dummy_corpus(), min(int(vocab_size), TOKENIZER_MAX_VOCAB)
    family = spec["family"]
    if family == "t5":
        tokenizer = tb.train_t5_tokenizer(texts, size, extra_ids=int(spec.get("extra_ids", 100)))
    elif family == "llama":
        tokenizer = tb.train_llama_tokenizer(texts, size)
    elif family == "roberta":
        tokenizer = tb.train_roberta_bpe(texts, size, add_prefix_space=bool(spec.get("add_prefix_space")))
    else:
        raise ValueError(f"unknown dummy tokenizer family {family!r}; known: t5, llama, roberta")
    if spec.get("model_max_length"):
        tokenizer.model_max_length = int(spec["model_max_length"])
    return tokenizer


def ensure_dummy_checkpoint(
    reference: str,
    what: str,
    head: Head = "lm",
    overrides: Optional[Mapping[str, Any]] = None,
    device: Optional[str] = None,
) -> Path:
    """The checkpoint directory of a ``dummy:`` reference, built on first use (see the module docstring).

    Args:
        reference: ``dummy:<name>`` or ``dummy:<path>``.
        what: the config key it came from, for error messages.
        head: ``lm`` (policy), ``sequence`` (regression reward model) or ``token`` (token classifier).
        overrides: config.json keys to replace (``dummy_overrides``).
        device: where the model will be loaded (``cpu`` refuses a large architecture even when CUDA exists).

    Raises:
        RuntimeError: a large architecture without CUDA or bound for the CPU.
        ValueError, FileNotFoundError: see ``load_architecture`` and ``with_overrides``.
    """
    arch = with_overrides(load_architecture(reference[len(DUMMY_SCHEME) :], what), overrides, what)
    count = parameter_count(arch, head)
    on_cpu = not torch.cuda.is_available() or (device is not None and torch.device(device).type == "cpu")
    if count > LARGE_DUMMY_PARAMS and on_cpu:
        raise RuntimeError(
            f"{what}: {reference} has {count / 1e9:.1f} B parameters; full-size dummy models are for GPUs and are "
            f"never materialised on a CPU ({'no CUDA device' if not torch.cuda.is_available() else 'device cpu'}). "
            f"Shrink it with dummy_overrides (e.g. {_shrink_hint(arch)}) or run it on a GPU."
        )
    build_device = "cuda" if count > LARGE_DUMMY_PARAMS else "cpu"
    key = json.dumps(
        [_VERSION, arch.config, arch.tokenizer, arch.checkpoint_renames, head, build_device], sort_keys=True
    )
    digest = hashlib.sha256(key.encode()).hexdigest()
    label = re.sub(r"[^\w.-]+", "_", Path(arch.name).stem if "/" in arch.name else arch.name)
    return build_once(
        cache_dir() / "dummy" / f"{label}-{head}-{digest[:10]}",
        lambda out: build_dummy_checkpoint(arch, head, out, int(digest[:8], 16), build_device),
        reference,
    )


def build_dummy_checkpoint(arch: Architecture, head: Head, out_dir: Path, seed: int, device: str = "cpu") -> None:
    """Initialise ``arch`` with its own weight initialisation (seeded; the caller's random states are restored) on
    ``device`` and save it with its tokenizer.

    Raises:
        ValueError: the family tokenizer has more ids than the model's vocabulary.
    """
    config = hf_config(arch)
    tokenizer = dummy_tokenizer(arch.tokenizer, config.vocab_size)
    if len(tokenizer) > config.vocab_size:
        raise ValueError(
            f"dummy {arch.name}: vocab_size {config.vocab_size} is smaller than the {len(tokenizer)} ids "
            f"of its {arch.tokenizer['family']} tokenizer; raise vocab_size in dummy_overrides"
        )
    dtype = getattr(torch, str(getattr(config, "dtype", None) or "float32").replace("torch.", ""))
    with preserved_rng_states():  # a run that builds the checkpoint draws the same random numbers as one that finds it
        torch.manual_seed(seed)
        if device == "cuda":
            torch.cuda.manual_seed_all(seed)
        model = instantiate(arch, head, device, dtype)
    state = None
    if arch.checkpoint_renames:
        state = {_renamed(k, arch.checkpoint_renames): v for k, v in model.state_dict().items()}
    model.save_pretrained(out_dir, state_dict=state, max_shard_size=SHARD_SIZE)
    tokenizer.save_pretrained(out_dir)
    provenance = {
        "architecture": arch.name,
        "head": head,
        "seed": seed,
        "build_device": device,
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": arch.config,
    }
    (out_dir / "dummy.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    del model
    if device == "cuda":
        torch.cuda.empty_cache()


def _renamed(name: str, renames: Mapping[str, str]) -> str:
    for pattern, replacement in renames.items():
        name = re.sub(pattern, replacement, name)
    return name


def _shrink_hint(arch: Architecture) -> dict:
    """A small override set for the architecture's model type (for the refusal message)."""
    hints = {
        "llama": {
            "num_hidden_layers": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "vocab_size": 2048,
        },
        "t5": {
            "num_layers": 2,
            "num_decoder_layers": 2,
            "d_model": 64,
            "d_ff": 128,
            "num_heads": 4,
            "d_kv": 16,
            "vocab_size": 2048,
        },
    }
    family = {"mt5": "t5"}.get(arch.config["model_type"], arch.config["model_type"])
    return hints.get(family, {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4})
