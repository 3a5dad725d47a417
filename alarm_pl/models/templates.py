"""The text a reward model reads: a template with ``{prompt}``, ``{response}``, ``{reference}`` and ``{question}``
placeholders (UltraRM's ``Human: … Assistant: …`` by default), and the template a trained reward model carries in its
``config.json`` (``TEMPLATE_KEY``) so that it is scored as it was trained."""

from __future__ import annotations

import logging
import re
from typing import Optional

ULTRARM_TEMPLATE = "Human: {prompt}\nAssistant: {response}"
TEMPLATE_KEY = "alarm_pl_reward_template"
"""The ``config.json`` key under which a reward model trained here (``alarm_pl.reward_training``) stores the template
it was trained with, so that a scorer loading it without a template reads its inputs the same way."""
log = logging.getLogger(__name__)
_PLACEHOLDER = re.compile(r"\{(prompt|response|reference|question)\}")


def format_template(
    template: str, prompt: str, response: str, reference: Optional[str] = None, question: Optional[str] = None
) -> tuple[str, int]:
    """Fill ``{prompt}``, ``{response}``, ``{reference}`` and ``{question}`` in ``template`` (other braces are left as
    they are). ``{question}`` is the record's ``metadata["question"]`` (QA-Feedback's question field), which
    FineGrainedRLHF's relevance model reads as ``question: … answer: …``.

    Returns:
        The filled text and the character offset where the (last) ``{response}`` starts in it.

    Raises:
        ValueError: the template has no ``{response}``, or uses ``{reference}`` / ``{question}`` while that value is
            None.
    """
    values = {"prompt": prompt, "response": response, "reference": reference, "question": question}
    pieces, cursor, response_start = [], 0, -1
    for match in _PLACEHOLDER.finditer(template):
        pieces.append(template[cursor : match.start()])
        value = values[match.group(1)]
        if value is None:
            source = "a reference" if match.group(1) == "reference" else "a 'question' in its metadata"
            raise ValueError(f"template {template!r} uses {{{match.group(1)}}} but this example has no {source}")
        if match.group(1) == "response":
            response_start = sum(len(piece) for piece in pieces)
        pieces.append(value)
        cursor = match.end()
    if response_start < 0:
        raise ValueError(f"template {template!r} must contain the placeholder {{response}}")
    pieces.append(template[cursor:])
    return "".join(pieces), response_start


def resolve_template(configured: Optional[str], saved: Optional[str], what: str) -> str:
    """The template a reward model reads: ``configured`` when given, else the one ``saved`` with the model, else
    UltraRM's. A configured template that differs from the saved one is used, with a warning naming ``what``."""
    if configured is None:
        return saved if saved is not None else ULTRARM_TEMPLATE
    if saved is not None and configured != saved:
        log.warning(
            "%s was trained with the template %r but is configured with %r; scores may be meaningless (leave "
            "the scorer's template unset to use the saved one)",
            what,
            saved,
            configured,
        )
    return configured
