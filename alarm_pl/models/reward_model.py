"""Frozen (optionally 4/8-bit) reward models: loading and batched scoring (input templates: ``models/templates.py``).

Two kinds of Hugging Face heads are supported:

- ``sequence``: ``AutoModelForSequenceClassification`` with one output (a regression head). Decoder models read it
  at the last non-pad token (UltraRM in the paper). Transformers finds that token as the rightmost position whose id
  differs from ``config.pad_token_id``; we pad on the right and, for each batch, pad with an id that does not occur
  among the batch's real tokens, so that position is exactly each text's last real token whatever the tokenizer's
  padding side or its pad/eos choice. Batched scores therefore equal one-by-one scores.
- ``token``: ``AutoModelForTokenClassification`` (the FineGrainedRLHF Longformer relevance/factuality models);
  ``token_logits`` returns each text's logits with the fast tokenizer's character offsets, so a scorer can read the
  logits at the token covering any character; ``word_token_logits`` takes texts already split into words and returns
  each token's word index, the input format FineGrainedRLHF trains and reads its token classifiers with
  (``reward_modeling/run_fg_rm.py`` ``tokenize_and_align_labels`` and ``tasks/qa_feedback/training/reward.py``: the
  text is ``str.split()`` into words and tokenized with ``is_split_into_words=True``, every word with a prefix space).

Inputs longer than ``max_length`` are truncated on the *left*: the response, at the end of the template, is what a
reward model must see. When a call holds more texts than ``batch_size``, texts of similar length share a batch
(``length_ordered_batches``); results come back in the callers' order.
"""

from __future__ import annotations

import logging
from typing import Literal, NamedTuple, Optional

import torch
from torch import Tensor

from alarm_pl.models.loading import quantization_config, resolve_model_reference, torch_dtype_from_str
from alarm_pl.models.templates import TEMPLATE_KEY, ULTRARM_TEMPLATE, format_template, resolve_template

HeadKind = Literal["sequence", "token"]
# UltraRM checkpoints name their linear head ``regression_head``; Llama's sequence classifier calls it ``score``.
ULTRARM_KEY_MAPPING = {r"^regression_head": "score"}
log = logging.getLogger(__name__)


class WordLogits(NamedTuple):
    """One word-split text's token-classification output.

    Attributes:
        logits: (L, C) float32 logits of the L real tokens (after truncation).
        word_ids: (L,) long index of the word each token belongs to, −1 for special tokens.
    """

    logits: Tensor
    word_ids: Tensor


class TokenLogits(NamedTuple):
    """One text's token-classification output.

    Attributes:
        logits: (L, C) float32 logits of the L real tokens.
        offsets: (L, 2) long character span ``[start, end)`` of each token in the formatted text (``(0, 0)`` for
            special tokens).
    """

    logits: Tensor
    offsets: Tensor


def unused_token_id(ids: Tensor, mask: Tensor, preferred: int) -> int:
    """An id that does not occur among the real tokens: ``preferred`` if possible, else the smallest free id.

    Args:
        ids: (B, L) token ids.
        mask: (B, L) attention mask, nonzero on real tokens.
        preferred: the tokenizer's pad id.
    """
    real = set(ids[mask.bool()].tolist())
    if preferred not in real:
        return preferred
    return next(i for i in range(len(real) + 1) if i not in real)


def configure_reward_tokenizer(tokenizer) -> None:
    """The reward-model tokenizer conventions, for scoring and for training alike: a pad token (EOS or UNK when the
    tokenizer has none), padding on the right, truncation on the left (a reward model must see the response, at the
    end of its template)."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side, tokenizer.truncation_side = "right", "left"


def reward_inputs(tokenizer, texts: list[str], max_length: int) -> tuple[Tensor, Tensor, int]:
    """Tokenize formatted texts for a sequence reward model (tokenizer set up by ``configure_reward_tokenizer``).

    Returns:
        ids (B, L) right-padded with ``pad_id``, an id that occurs among no text's real tokens, so that the rightmost
        position whose id differs from it is exactly each text's last real token; mask (B, L), 1 on real tokens;
        ``pad_id``.
    """
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    mask = enc["attention_mask"]  # (B, L)
    pad_id = unused_token_id(enc["input_ids"], mask, tokenizer.pad_token_id)
    return enc["input_ids"].masked_fill(mask == 0, pad_id), mask, pad_id


def hf_config(model: "torch.nn.Module"):
    """The ``transformers`` config of a model or of the base model under a peft wrapper."""
    return model.get_base_model().config if hasattr(model, "get_base_model") else model.config


def last_token_rewards(model: "torch.nn.Module", ids: Tensor, mask: Tensor, pad_id: int) -> Tensor:
    """A one-output sequence classifier's score of each text, read at its last real token.

    Args:
        model: an ``*ForSequenceClassification`` with one output (possibly under a peft adapter).
        ids: (B, L) from ``reward_inputs``, padded with ``pad_id``.
        mask: (B, L) attention mask.
        pad_id: the padding id of ``ids``; transformers reads the score at the rightmost id that differs from
            ``config.pad_token_id``, so it is set to ``pad_id`` for this forward and restored afterwards.

    Returns:
        (B,) scores in the model's dtype, on the model's device, differentiable when gradients are enabled.
    """
    config = hf_config(model)
    saved, config.pad_token_id = config.pad_token_id, pad_id
    try:
        device = next(model.parameters()).device
        return model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, 0]  # (B,)
    finally:
        config.pad_token_id = saved


def model_input_limit(model: "torch.nn.Module", tokenizer) -> int:
    """The most tokens the model accepts: its position table size (GPT-2 ``n_positions``, others
    ``max_position_embeddings``; RoBERTa-style models, Longformer included, reserve ``pad_token_id + 1`` of its
    rows) or the tokenizer's ``model_max_length``, whichever is known and smaller."""
    config = model.config
    limits = [getattr(config, key, None) for key in ("n_positions", "max_position_embeddings")]
    if ("roberta" in config.model_type or config.model_type == "longformer") and limits[1]:
        limits[1] -= (config.pad_token_id or 0) + 1
    limits.append(getattr(tokenizer, "model_max_length", None))
    known = [int(x) for x in limits if isinstance(x, int) and 0 < x < 1_000_000]
    return min(known) if known else 1_000_000


def length_ordered_batches(texts: list[str], size: int) -> list[list[int]]:
    """Indices of ``texts`` in batches of at most ``size``, texts of similar length together (by characters, a close
    proxy of tokens that needs no extra tokenizer pass), so that each padded batch wastes little on padding. One
    batch, in the original order, when everything fits in one.

    Returns:
        Batches of indices covering ``range(len(texts))`` exactly once.
    """
    if len(texts) <= size:
        return [list(range(len(texts)))] if texts else []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[start : start + size] for start in range(0, len(order), size)]


class FrozenRewardModel:
    """A frozen reward model and its tokenizer: no gradients, eval mode, fixed template.

    Args:
        model: a loaded ``*ForSequenceClassification`` (one output) or ``*ForTokenClassification``.
        tokenizer: its tokenizer (fast for ``kind="token"``); its padding/truncation sides are set here.
        kind: ``sequence`` or ``token`` (see the module docstring).
        template: the model's input with ``{prompt}``, ``{response}`` and optionally ``{reference}``, ``{question}``.
        batch_size: texts per forward pass.
        max_length: tokens per text, capped at ``model_input_limit``; longer texts lose their beginning.
    """

    def __init__(
        self,
        model: "torch.nn.Module",
        tokenizer,
        kind: HeadKind = "sequence",
        template: str = ULTRARM_TEMPLATE,
        batch_size: int = 8,
        max_length: int = 1024,
    ) -> None:
        format_template(template, "", "", "", "")  # validates the template now, not at the first batch
        if kind not in ("sequence", "token"):
            raise ValueError(f"reward model kind must be 'sequence' or 'token', got {kind!r}")
        if kind == "sequence" and model.config.num_labels != 1:
            raise ValueError(
                f"a sequence reward model needs exactly one output (regression head), this one has "
                f"num_labels={model.config.num_labels}"
            )
        if kind == "token" and not getattr(tokenizer, "is_fast", False):
            raise ValueError("a token-classification reward model needs a fast tokenizer (character offsets)")
        configure_reward_tokenizer(tokenizer)
        model.config.pad_token_id = tokenizer.pad_token_id
        self.model = model.eval().requires_grad_(False)
        self.tokenizer, self.kind, self.template = tokenizer, kind, template
        self.batch_size, self.max_length = int(batch_size), min(int(max_length), model_input_limit(model, tokenizer))

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str,
        kind: HeadKind = "sequence",
        template: Optional[str] = None,
        batch_size: int = 8,
        max_length: int = 1024,
        quantization_bits: Optional[int] = None,
        dtype: str = "float32",
        device: "str | torch.device" = "cpu",
        what: str = "model_name_or_path",
        key_mapping: Optional[dict[str, str]] = None,
        allow_cpu_quantization: bool = False,
        dummy_overrides: Optional[dict] = None,
    ) -> "FrozenRewardModel":
        """Load model and tokenizer from a local directory or the hub (``loading.resolve_pretrained``).

        Args:
            model_name_or_path: local directory, hub id, ``tiny:<name>`` asset or ``dummy:<architecture>``
                (``loading.resolve_model_reference``).
            template: the input template; None: the one saved with the model (``TEMPLATE_KEY`` in its config, written
                by ``alarm_pl.reward_training``), else UltraRM's.
            kind, batch_size, max_length: see the class.
            quantization_bits: 4, 8 or None (``loading.quantization_config``); quantized models are placed on
                ``device`` by bitsandbytes.
            dtype: ``float32``, ``bfloat16``, ``float16`` or ``auto``.
            device: where the model runs.
            what: the config key of ``model_name_or_path``, for error messages.
            key_mapping: regexes renaming checkpoint weights (``ULTRARM_KEY_MAPPING`` for UltraRM).
            allow_cpu_quantization: quantize without CUDA (bitsandbytes' CPU kernels: CPU smoke runs and tests).
            dummy_overrides: config.json keys replaced in a ``dummy:`` architecture (shrinking it).

        Raises:
            FileNotFoundError, HubUnavailableError: see ``loading.resolve_pretrained``.
            ValueError: weights missing from the checkpoint (e.g. an untrained head), or the wrong head size.
        """
        from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

        path = resolve_model_reference(model_name_or_path, what, kind, dummy_overrides, str(device))
        auto = AutoModelForSequenceClassification if kind == "sequence" else AutoModelForTokenClassification
        kwargs: dict = {"dtype": torch_dtype_from_str(dtype), "output_loading_info": True}
        if kind == "sequence":  # configs of custom reward heads (UltraRM) omit num_labels, whose default is 2
            kwargs["num_labels"] = 1
        quant = quantization_config(quantization_bits, allow_cpu=allow_cpu_quantization)
        if quant is not None:
            kwargs.update(quantization_config=quant, device_map={"": str(device)})
        if key_mapping:
            kwargs["key_mapping"] = key_mapping
        try:
            model, info = auto.from_pretrained(path, **kwargs)
        except (RuntimeError, ValueError) as err:  # e.g. a head of another size than one output
            raise ValueError(
                f"{what}: {model_name_or_path!r} could not be loaded as a {kind} reward model"
                f"{' (one regression output)' if kind == 'sequence' else ''}: {err}"
            ) from err
        if info.get("missing_keys"):
            missing = sorted(info["missing_keys"])
            raise ValueError(
                f"{what}: {model_name_or_path!r} lacks weights {missing[:5]} for a {kind} reward model, so they would "
                f"be random; check the head type, or pass key_mapping for a renamed head (UltraRM: "
                f"{ULTRARM_KEY_MAPPING})"
            )
        if quant is None:
            model = model.to(device)
        tokenizer = AutoTokenizer.from_pretrained(path)
        template = resolve_template(
            template, getattr(model.config, TEMPLATE_KEY, None), f"{what}: {model_name_or_path!r}"
        )
        return cls(model, tokenizer, kind=kind, template=template, batch_size=batch_size, max_length=max_length)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def format(
        self,
        prompts: list[str],
        responses: list[str],
        references: Optional[list[Optional[str]]] = None,
        questions: Optional[list[Optional[str]]] = None,
    ) -> list[tuple[str, int]]:
        """The template filled for each example: (text, character offset of the response in it)."""
        references = references if references is not None else [None] * len(responses)
        questions = questions if questions is not None else [None] * len(responses)
        return [
            format_template(self.template, p, r, ref, q)
            for p, r, ref, q in zip(prompts, responses, references, questions)
        ]

    def _encode(self, texts: list[str], max_length: int, offsets: bool = False):
        return self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
            return_offsets_mapping=offsets,
        )

    @torch.no_grad()
    def score_texts(
        self, texts: list[str], batch_size: Optional[int] = None, max_length: Optional[int] = None
    ) -> Tensor:
        """Scalar reward of each (already formatted) text.

        Returns:
            (B,) float32 on CPU, the regression head read at each text's last real token.
        """
        if self.kind != "sequence":
            raise ValueError("score_texts needs a sequence reward model (kind='sequence')")
        scores = torch.zeros(len(texts))
        for batch in length_ordered_batches(texts, batch_size or self.batch_size):
            ids, mask, pad_id = reward_inputs(self.tokenizer, [texts[i] for i in batch], max_length or self.max_length)
            scores[batch] = last_token_rewards(self.model, ids, mask, pad_id).float().cpu()  # (b,)
        return scores

    @torch.no_grad()
    def token_logits(
        self, texts: list[str], batch_size: Optional[int] = None, max_length: Optional[int] = None
    ) -> list[TokenLogits]:
        """Per-token logits and character offsets of each (already formatted) text; see ``TokenLogits``."""
        if self.kind != "token":
            raise ValueError("token_logits needs a token-classification reward model (kind='token')")
        results: list[TokenLogits | None] = [None] * len(texts)
        for batch in length_ordered_batches(texts, batch_size or self.batch_size):
            enc = self._encode([texts[i] for i in batch], max_length or self.max_length, offsets=True)
            mask = enc["attention_mask"]  # (b, L)
            out = self.model(input_ids=enc["input_ids"].to(self.device), attention_mask=mask.to(self.device))
            logits = out.logits.float().cpu()  # (b, L, C)
            for row, length in enumerate(mask.sum(dim=1).tolist()):
                results[batch[row]] = TokenLogits(logits[row, :length], enc["offset_mapping"][row, :length].long())
        return results

    @torch.no_grad()
    def word_token_logits(
        self, words: list[list[str]], batch_size: Optional[int] = None, max_length: Optional[int] = None
    ) -> list[WordLogits]:
        """Per-token logits and word indices of texts given as word lists (``is_split_into_words=True``).

        Byte-level BPE tokenizers (RoBERTa, Longformer) must have ``add_prefix_space=True`` for this, as
        FineGrainedRLHF's reward-model training loads them (``reward_modeling/run_fg_rm.py``); a tokenizer saved with
        ``add_prefix_space=False`` is refused rather than silently fed words without their leading space.
        """
        if self.kind != "token":
            raise ValueError("word_token_logits needs a token-classification reward model (kind='token')")
        if getattr(self.tokenizer, "add_prefix_space", None) is False:
            raise ValueError(
                "the reward model's tokenizer has add_prefix_space=False, but word-split input needs it "
                '(FineGrainedRLHF trains with add_prefix_space=True); set "add_prefix_space": true in '
                "its tokenizer_config.json"
            )
        results: list[WordLogits | None] = [None] * len(words)
        for batch in length_ordered_batches([" ".join(w) for w in words], batch_size or self.batch_size):
            enc = self.tokenizer(
                [words[i] for i in batch],
                is_split_into_words=True,
                padding=True,
                truncation=True,
                max_length=max_length or self.max_length,
                return_tensors="pt",
            )
            mask = enc["attention_mask"]  # (b, L)
            out = self.model(input_ids=enc["input_ids"].to(self.device), attention_mask=mask.to(self.device))
            logits = out.logits.float().cpu()  # (b, L, C)
            for row, length in enumerate(mask.sum(dim=1).tolist()):
                ids = [-1 if w is None else w for w in enc.word_ids(row)]
                word_ids = torch.tensor(ids, dtype=torch.long)  # (L_padded,), right padding
                results[batch[row]] = WordLogits(logits[row, :length], word_ids[:length])
        return results
