"""Aspects read off frozen fine-grained reward models (FineGrainedRLHF-style, the paper's QA aspects).

- ``TokenClassificationAspect`` (relevance per sub-sentence, factuality per sentence): the response is split into
  units (``rewards/text.py``), the reward model reads one position per unit, and the predicted label gives
  ``positive_value`` or ``negative_value`` on the *policy* token that ends the unit (``align.token_ending_at``).
  Metric: the share of positive units (higher is better; "factuality rate"), ``empty_metric`` for a response without
  units. Units whose read position was cut off by ``max_length`` (left truncation) get no value and are not counted.

  *Label roles.* A token classifier has C classes; ``positive_label`` (no error) and ``negative_label`` (error) are
  the only classes a unit can be read as: the label is the argmax over those two logits, whatever the other
  (``ignore_labels``) logits say. FineGrainedRLHF's classifiers have a third class "Ignore" that is never a training
  target (its tokens get label −100, ``reward_modeling/run_fg_rm.py`` ``tokenize_and_align_labels``), and their label
  ids are the sorted label names (``get_label_list``): factuality ``[F-ERR, Ignore, O]`` → 0 error, 1 ignore,
  2 no error; relevance ``[Ignore, NF-ERR, O]`` → 0 ignore, 1 error, 2 no error. Their reader takes the argmax over
  ``logits[[error, no error]]`` (``tasks/qa_feedback/training/reward.py``, ALaRM's ``long-form-QA/my_reward.py``
  ``FactualityReward.get_reward`` / ``SubSentenceVerbosityReward.get_reward``); a tie reads as error, as there.

  *Where a unit is read.* With ``marker`` (``</s>`` for FineGrainedRLHF), the model's input is the template filled
  with ``<marker> unit₁ <marker> unit₂ …``: the marker sits *before* each unit and the model's logits at that marker
  are the unit's label, exactly the training format (``tasks/qa_feedback/reward_modeling/create_rel_fact_rm_files.py``
  ``get_token_labels``: ``new_tokens += [SEP_TOKEN, t]`` with the sentence label on the ``SEP_TOKEN``). The input is
  then given as words (``str.split()``, ``is_split_into_words=True``), as FineGrainedRLHF trains and reads it, so the
  marker is one word and the whitespace of prompt and response is normalised. Without a marker the raw text is
  tokenized and each unit is read at the token covering its last visible character (for models trained that way).
- ``SequenceRegressionAspect`` (completeness): the model's output on the last policy token; its ``normalizer`` maps it
  (FineGrainedRLHF: ``FixedNormalizer(mean, std, scale=0.3)``, i.e. 0.3·(raw − μ)/σ before the sigmoid). Metric: the
  raw output.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
from torch import Tensor

from alarm_pl.rewards.base import Score, ScorerError, ScoringInput, Span
from alarm_pl.rewards.holistic import RewardModelScorer, questions

QA_TEMPLATE = "{prompt} answer: {response}"
"""FineGrainedRLHF's factuality and completeness input (``f"{meta['prompt']} answer: {...}"``, QA-Feedback prompts
already read ``question: … context: …``); its relevance model reads ``question: {question} answer: {response}``."""


def token_at_char(offsets: Tensor, char: int) -> Optional[int]:
    """Index of the token whose character span ``[start, end)`` covers ``char``, or None (truncated away).

    Args:
        offsets: (L, 2) token character spans of the formatted text.
        char: a character index into the formatted text.
    """
    covers = ((offsets[:, 0] <= char) & (char < offsets[:, 1])).nonzero()  # (n, 1)
    return int(covers[0, 0]) if len(covers) else None


def marked_words(prefix: str, text: str, units: list[Span], suffix: str, marker: str) -> tuple[list[str], list[int]]:
    """The reward model's input as words, ``marker`` placed before every unit, and each unit's marker word index.

    ``prefix`` and ``suffix`` are the filled template around the response. Words are ``str.split()`` pieces, so
    whitespace is normalised as in FineGrainedRLHF (``' '.join(f"{sep} {sent}" ...)`` then ``.split()``). Response
    text between units (whitespace for the project's splitters) is kept, attached to no marker.

    Returns:
        (words, marker_positions) with ``words[marker_positions[k]] == marker`` for unit k.
    """
    words, positions, cursor = prefix.split(), [], 0
    for start, end in units:
        words += text[cursor:start].split()
        positions.append(len(words))
        words += [marker] + text[start:end].split()
        cursor = end
    return words + text[cursor:].split() + suffix.split(), positions


def check_label_roles(
    num_labels: int, id2label: dict, positive: int, negative: int, ignore: Optional[list[int]], where: str
) -> None:
    """Raise a ``ValueError`` naming ``where`` when the label roles do not fit the classifier.

    The ids must lie in ``[0, num_labels)`` and be distinct; with ``ignore`` given, positive + negative + ignore must
    be exactly every class. When the checkpoint names its labels (``config.id2label``, FineGrainedRLHF saves
    ``O``, ``Ignore``, ``F-ERR``/``NF-ERR``), a class named ``Ignore`` must be ignored, ``O`` must be positive and a
    name containing ``ERR`` must be negative.
    """
    roles = {positive: "positive", negative: "negative", **{i: "ignored" for i in (ignore or [])}}
    listed = [positive, negative, *(ignore or [])]
    if len(set(listed)) != len(listed) or any(not 0 <= i < num_labels for i in listed):
        raise ValueError(
            f"{where}: positive_label {positive}, negative_label {negative} and ignore_labels {ignore} "
            f"must be distinct class ids in [0, {num_labels})"
        )
    if ignore is not None and set(listed) != set(range(num_labels)):
        raise ValueError(
            f"{where}: the model has {num_labels} classes; positive_label, negative_label and "
            f"ignore_labels must name each exactly once, got {sorted(listed)}"
        )
    for index, name in (id2label or {}).items():
        index, name = int(index), str(name)
        expected = (
            "ignored"
            if name.lower() == "ignore"
            else "positive"
            if name == "O"
            else "negative"
            if "ERR" in name.upper()
            else None
        )
        if expected is not None and roles.get(index, "ignored") != expected:
            raise ValueError(
                f"{where}: the checkpoint names class {index} {name!r}, which should be {expected}, but "
                f"it is configured {roles.get(index, 'ignored')} (positive_label={positive}, "
                f"negative_label={negative}, ignore_labels={ignore})"
            )


def reads_positive(logits: Tensor, positive: int, negative: int) -> bool:
    """The unit's label from its logits (C,): argmax over {negative, positive} only; a tie reads negative."""
    return bool(logits[positive] > logits[negative])


class TokenClassificationAspect(RewardModelScorer):
    """Per-unit labels of a frozen token classifier, placed on the policy tokens ending each unit.

    Args:
        model_name_or_path: an ``AutoModelForTokenClassification`` checkpoint (local, hub id or ``tiny:<name>``).
        unit: ``sentence`` (factuality) or ``subsentence`` (relevance: split at ``,;!?`` with ≥ ``min_words``).
        positive_value: value of a unit read as ``positive_label`` (paper: +0.5 factuality, +0.3 relevance).
        negative_value: value of a unit read as ``negative_label`` (paper: −0.5 / −0.3).
        positive_label: class id of "no error" (FineGrainedRLHF: 2 for both models).
        negative_label: class id of "error" (FineGrainedRLHF: factuality 0, relevance 1).
        ignore_labels: the other class ids, never read as a unit's label (FineGrainedRLHF: factuality [1], relevance
            [0]); null = every class that is neither positive nor negative.
        template: the model's input; placeholders ``{prompt}``, ``{response}``, ``{reference}``, ``{question}``.
        min_words: the shortest sub-sentence (``unit="subsentence"``).
        marker: a token placed before each unit and read there (``</s>`` for FineGrainedRLHF); null reads each unit
            at its last character in the raw text.
        empty_metric: the metric of a response with no (readable) unit (authors: 0.5, ``long-form-QA/train_ppo.py``
            ``factuality_rate ... if n_sentences else 0.5``).
        **kwargs: loading and ``Scorer`` arguments of ``RewardModelScorer`` (batch_size, max_length, dtype, ...).
    """

    default_name = "factuality"
    head_kind = "token"

    def __init__(
        self,
        model_name_or_path: str,
        unit: Literal["sentence", "subsentence"] = "sentence",
        positive_value: float = 0.5,
        negative_value: float = -0.5,
        positive_label: int = 2,
        negative_label: int = 0,
        ignore_labels: Optional[list[int]] = None,
        template: str = QA_TEMPLATE,
        min_words: int = 5,
        marker: Optional[str] = None,
        empty_metric: float = 0.5,
        **kwargs,
    ) -> None:
        super().__init__(model_name_or_path, template=template, **kwargs)
        if unit not in ("sentence", "subsentence"):
            raise ValueError(f"scorer {self.name!r}: unit must be 'sentence' or 'subsentence', got {unit!r}")
        self.unit, self.min_words, self.marker = unit, int(min_words), marker
        self.positive_value, self.negative_value = float(positive_value), float(negative_value)
        self.positive_label, self.negative_label = int(positive_label), int(negative_label)
        self.ignore_labels = None if ignore_labels is None else [int(i) for i in ignore_labels]
        self.empty_metric = float(empty_metric)

    def setup(self, device: torch.device) -> None:
        """Load the classifier and check the label roles and the marker against it."""
        super().setup(device)
        config, tokenizer = self.model.model.config, self.model.tokenizer
        check_label_roles(
            config.num_labels,
            getattr(config, "id2label", None),
            self.positive_label,
            self.negative_label,
            self.ignore_labels,
            f"scorer {self.name!r}",
        )
        if self.marker is not None and self.marker not in tokenizer.all_special_tokens + list(
            tokenizer.get_added_vocab()
        ):
            raise ValueError(
                f"scorer {self.name!r}: marker {self.marker!r} is not a special token of the reward "
                f"model's tokenizer ({tokenizer.all_special_tokens}); FineGrainedRLHF uses '</s>'"
            )

    def units(self, text: str) -> list[Span]:
        """The non-blank sentences or sub-sentences of ``text`` as character spans."""
        from alarm_pl.rewards.text import split_sentences, split_subsentences

        spans = split_sentences(text) if self.unit == "sentence" else split_subsentences(text, self.min_words)
        return [(start, end) for start, end in spans if text[start:end].strip()]

    def _format(self, inputs: ScoringInput, responses: list[str]) -> list[tuple[str, int]]:
        try:
            return self.model.format(inputs.prompts, responses, inputs.references, questions(inputs))
        except ValueError as err:
            raise ScorerError(f"scorer {self.name!r}: {err}") from err

    def _read_logits(self, inputs: ScoringInput, units: list[list[Span]]) -> list[list[Optional[Tensor]]]:
        """For each response and unit: the (C,) logits at its read position (None: truncated away)."""
        if self.marker is None:
            formatted = self._format(inputs, inputs.responses)
            outputs = self.model.token_logits([text for text, _ in formatted])
            rows = []
            for text, spans, (_, offset), out in zip(inputs.responses, units, formatted, outputs):
                tokens = [token_at_char(out.offsets, offset + len(text[:end].rstrip()) - 1) for _, end in spans]
                rows.append([None if t is None else out.logits[t] for t in tokens])
            return rows
        frames = self._format(inputs, [""] * len(inputs))  # the template around an empty response
        words = [
            marked_words(frame[:at], text, spans, frame[at:], self.marker)
            for (frame, at), text, spans in zip(frames, inputs.responses, units)
        ]
        outputs = self.model.word_token_logits([w for w, _ in words])
        rows = []
        for (_, positions), out in zip(words, outputs):
            tokens = [(out.word_ids == p).nonzero() for p in positions]  # the marker word is one token
            rows.append([out.logits[int(t[0, 0])] if len(t) else None for t in tokens])
        return rows

    def unit_labels(self, inputs: ScoringInput, units: list[list[Span]]) -> list[list[Optional[bool]]]:
        """For each response and unit: is the unit read positive (None: its read token was truncated away)."""
        return [
            [
                None if logits is None else reads_positive(logits, self.positive_label, self.negative_label)
                for logits in row
            ]
            for row in self._read_logits(inputs, units)
        ]

    def score(self, inputs: ScoringInput) -> Score:
        """±value on the policy token ending each unit; metric: share of positive units (``empty_metric`` without)."""
        from alarm_pl.rewards.align import scatter_token_values, token_ending_at

        if self.model is None:
            raise ScorerError(f"scorer {self.name!r}: call setup(device) before score()")
        units = [self.units(text) for text in inputs.responses]
        labels = self.unit_labels(inputs, units)
        positions, values, metric = [], [], []
        for i, (spans, row) in enumerate(zip(units, labels)):
            placed: dict[int, float] = {}  # two units ending on one policy token add up
            for (_, end), positive in zip(spans, row):
                if positive is None:
                    continue
                try:
                    token = token_ending_at(inputs.token_spans[i], end, inputs.responses[i])
                except ValueError as err:
                    raise ScorerError(f"scorer {self.name!r}, response {i}: {err}") from err
                placed[token] = placed.get(token, 0.0) + (self.positive_value if positive else self.negative_value)
            counted = [p for p in row if p is not None]
            metric.append(sum(counted) / len(counted) if counted else self.empty_metric)
            positions.append(list(placed))
            values.append(list(placed.values()))
        value_tensor, placed_tensor = scatter_token_values(inputs.response_mask, positions, values)  # (B, T) each
        return Score(
            values=value_tensor,
            placed=placed_tensor,
            higher_is_better=True,
            metric=torch.tensor(metric, dtype=torch.float32, device=inputs.response_mask.device),
        )


class SequenceRegressionAspect(RewardModelScorer):
    """A frozen regression model's output on the last policy token (completeness); metric: the raw output.

    The placed value is the raw output; give the shaping constants to its ``normalizer`` (FineGrainedRLHF's
    completeness: ``FixedNormalizer(mean=-0.4468, std=8.3012, scale=0.3)``, so the reward is σ(0.3·(raw − μ)/σ)).

    Args:
        model_name_or_path: an ``AutoModelForSequenceClassification`` checkpoint with one output.
        template: the model's input; placeholders ``{prompt}``, ``{response}``, ``{reference}``, ``{question}``.
        collapse_prompt_whitespace: join the prompt's words with single spaces before filling the template, as
            FineGrainedRLHF feeds its completeness model (``' '.join(meta['prompt'].split())``,
            ``PreferenceReward.get_reward``).
        **kwargs: loading and ``Scorer`` arguments of ``RewardModelScorer`` (normalizer, weight, max_length, ...).
    """

    default_name = "completeness"

    def __init__(
        self, model_name_or_path: str, template: str = QA_TEMPLATE, collapse_prompt_whitespace: bool = False, **kwargs
    ) -> None:
        super().__init__(model_name_or_path, template=template, **kwargs)
        self.collapse_prompt_whitespace = bool(collapse_prompt_whitespace)

    def score(self, inputs: ScoringInput) -> Score:
        if self.collapse_prompt_whitespace:
            from dataclasses import replace

            inputs = replace(inputs, prompts=[" ".join(p.split()) for p in inputs.prompts])
        raw = self.raw_rewards(inputs).to(inputs.response_mask.device)  # (B,)
        return Score.sequence(raw, inputs.response_mask, metric=raw, higher_is_better=True)
