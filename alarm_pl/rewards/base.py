"""The scorer interface and its containers.

A *scorer* turns decoded responses into rewards. Every scorer returns the same container, ``Score``:

- ``values`` (B, T): per-token values aligned to the policy's response tokens (right-padded, exactly 0 on padding and
  on tokens the scorer did not place a value on). Values are oriented as *rewards*: higher is better.
- ``placed`` (B, T) bool: the tokens that carry a value (a sentence end, the tokens of a grammar error, every token,
  or only the last real token for sequence-level scorers). Shaping (sigmoid) applies to these positions only.
- ``metric`` (B,): a per-response summary in the scorer's own units (error rate, grade level, chrF, raw reward-model
  output), with its direction in ``higher_is_better``. Selection and evaluation compare responses by this number.

The holistic reward is a scorer too: its ``metric`` (oriented higher-is-better) is the raw holistic reward H_raw.

Scorers are configured in YAML by ``class_path``. Nothing heavy happens in ``__init__``: models, detectors and
servers start in ``setup`` and stop in ``teardown``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal, Optional, Sequence

import torch
from torch import Tensor, nn

Shaping = Literal["sigmoid", "identity"]

Span = tuple[int, int]
"""A character span ``[start, end)`` in a string: a token's characters in its decoded response, a word, a sentence, a
grammar error. The one span type of the reward code (``align``, ``text`` and the aspect scorers use it)."""


@dataclass(frozen=True)
class ScoringInput:
    """What a scorer sees of one rollout batch.

    Attributes:
        prompts: B prompt texts.
        responses: B decoded responses (special tokens skipped). ``token_spans`` index into these strings.
        references: B references or ``None`` where a prompt has none.
        metadata: B dicts from the data file.
        response_ids: (B, T) long, right-padded policy response token ids.
        response_mask: (B, T) bool, ``True`` on real tokens; response i has ``response_mask[i].sum()`` tokens.
        token_spans: for each response, one ``(start, end)`` character span in ``responses[i]`` per real token
            (``len(token_spans[i]) == response_mask[i].sum()``); see ``alarm_pl.rewards.align`` (the pipeline passes
            a ``LazyTokenSpans``, which decodes a response's spans only when a scorer reads them).
    """

    prompts: list[str]
    responses: list[str]
    references: list[Optional[str]]
    metadata: list[dict]
    response_ids: Tensor
    response_mask: Tensor
    token_spans: Sequence[list[Span]]

    @property
    def lengths(self) -> Tensor:
        """(B,) number of real tokens of each response."""
        return self.response_mask.sum(dim=1)

    def __len__(self) -> int:
        return len(self.responses)


@dataclass(frozen=True)
class Score:
    """One scorer's output for a batch (see the module docstring for the conventions).

    Attributes:
        values: (B, T) float per-token reward values, 0 where ``placed`` is False.
        placed: (B, T) bool positions that carry a value; always a subset of the response mask.
        metric: (B,) float per-response summary metric in the scorer's own units.
        higher_is_better: direction of ``metric``.
    """

    values: Tensor
    placed: Tensor
    metric: Tensor
    higher_is_better: bool = True

    @property
    def oriented_metric(self) -> Tensor:
        """(B,) the metric with its sign flipped when lower is better, so that higher is always better."""
        return self.metric if self.higher_is_better else -self.metric

    @staticmethod
    def sequence(
        value: Tensor, mask: Tensor, metric: Optional[Tensor] = None, higher_is_better: bool = True
    ) -> "Score":
        """A sequence-level score: ``value`` (B,) placed on each response's last real token.

        Args:
            value: (B,) reward value per response (higher is better).
            mask: (B, T) response mask.
            metric: (B,) summary metric; defaults to ``value``.
            higher_is_better: direction of ``metric``.
        """
        mask = mask.bool()
        placed = last_token_mask(mask)  # (B, T)
        values = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
        values = values.masked_scatter(placed, value.float()[placed.any(dim=1)].to(mask.device))
        return Score(
            values=values,
            placed=placed,
            metric=(value if metric is None else metric).float(),
            higher_is_better=higher_is_better,
        )


def last_token_mask(mask: Tensor) -> Tensor:
    """(B, T) bool, True only at each row's last real token (``mask[i].sum() - 1``); all False for empty rows."""
    mask = mask.bool()
    lengths = mask.sum(dim=1)  # (B,)
    positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)  # (1, T)
    return (positions == (lengths - 1).unsqueeze(1)) & (lengths > 0).unsqueeze(1)


class Normalizer(nn.Module):
    """Base class of normalisers (``alarm_pl.rewards.normalize``): ``forward(x)`` returns the normalised values (same
    shape), ``update(x)`` feeds new values. Defined here so that ``Scorer`` can type its ``normalizer`` argument."""

    def forward(self, x: Tensor) -> Tensor:
        """Args: x: any shape. Returns: the normalised values, same shape and dtype."""
        return x

    def update(self, x: Tensor) -> None:
        """Feed observed values (any shape; all elements count). The base class keeps no statistics."""


class Scorer(ABC):
    """Base class of every reward scorer (holistic or aspect).

    Subclasses implement ``score``; those holding models or servers also override ``setup``/``teardown``.

    Args:
        name: the scorer's name in logs, selection and evaluation; defaults to the class's ``default_name``.
        weight: w_k, the weight of this aspect in the weighted sum (ignored for the holistic scorer, whose weight is
            ``reward.holistic_weight``).
        normalizer: optional normalisation of the placed values (``alarm_pl.rewards.normalize``), e.g. the fixed
            z-normalisation of PAPER.md or a running one. For the holistic scorer it normalises the metric into H.
        shaping: ``sigmoid`` turns placed values into positive bonuses σ(x) (PAPER.md §1 step 2); ``identity`` keeps
            them. Ignored for the holistic scorer (the holistic reward is never shaped).
    """

    default_name: str = "scorer"

    def __init__(
        self,
        name: Optional[str] = None,
        weight: float = 1.0,
        normalizer: Optional[Normalizer] = None,
        shaping: Shaping = "sigmoid",
    ) -> None:
        self.name = name or self.default_name
        self.weight = float(weight)
        self.normalizer = normalizer
        if shaping not in ("sigmoid", "identity"):
            raise ValueError(f"scorer {self.name!r}: shaping must be 'sigmoid' or 'identity', got {shaping!r}")
        self.shaping = shaping

    def setup(self, device: torch.device) -> None:  # noqa: B027 (optional hook: most scorers need no setup)
        """Load models, start detectors or connect to servers. Called once before the first ``score``."""

    @abstractmethod
    def score(self, inputs: ScoringInput) -> Score:
        """Score a batch of decoded responses; see ``Score`` for the conventions."""

    def teardown(self) -> None:  # noqa: B027 (optional hook)
        """Release what ``setup`` acquired."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, weight={self.weight})"


class ScorerError(RuntimeError):
    """A scorer could not produce a score (server down, model missing, bad input); the message names the scorer."""


class ScorerUnavailable(ScorerError):
    """A scorer's server (or remote model) stayed unreachable after its retries; the message names the URL."""
