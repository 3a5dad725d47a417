"""The LLM judge's prompt and the parsing of its reply.

The default prompt is a one-shot, AlpacaEval-style forced choice (PAPER.md §4): the instruction shown to the judge is
the policy prompt, followed by two outputs labelled "Output (a)" and "Output (b)"; the judge answers with one label.
The judge is also offered a tool, ``choose_output(output: "a" | "b")``; a reply is read from a valid tool call first,
then from the text. A reply naming neither label, or both, is *unparseable*: it is recorded as such, never guessed.

A user prompt file replaces the default. It must contain the placeholders ``{instruction}``, ``{output_1}`` and
``{output_2}`` (substituted in one pass, so braces inside outputs are safe). It may start with a line ``[system]``;
then the text up to a line ``[user]`` is the system message and the rest the user message. Otherwise the whole file
is the user message and no system message is sent.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

PLACEHOLDERS = ("instruction", "output_1", "output_2")
_PLACEHOLDER = re.compile(r"\{(instruction|output_1|output_2)\}")

DEFAULT_SYSTEM = "You are a careful, impartial judge of the quality of AI assistants' answers."

DEFAULT_TEMPLATE = """\
Two AI assistants answered the same instruction. Decide which output is the better answer: the one that follows \
the instruction more helpfully, accurately and faithfully. Neither the order of the outputs nor their length may \
influence your decision. Reply with exactly "Output (a)" or "Output (b)" and nothing else.

# Example

## Instruction:
Give the boiling point of water at sea level in degrees Celsius.

## Output (a):
Water boils at about 90 degrees Celsius at sea level.

## Output (b):
At sea level, water boils at 100 degrees Celsius.

## Which output is better, "Output (a)" or "Output (b)"?
Output (b)

# Your task

## Instruction:
{instruction}

## Output (a):
{output_1}

## Output (b):
{output_2}

## Which output is better, "Output (a)" or "Output (b)"?
"""

TOOL_NAME = "choose_output"
CHOOSE_OUTPUT_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "Record which of the two outputs is the better answer to the instruction.",
        "parameters": {
            "type": "object",
            "properties": {
                "output": {
                    "type": "string",
                    "enum": ["a", "b"],
                    "description": "'a' for Output (a), 'b' for Output (b).",
                }
            },
            "required": ["output"],
        },
    },
}

_BARE_LABEL = re.compile(r"^\W*(?:output\s*)?\(?\s*([ab])\s*\)?\W*$", re.IGNORECASE)
_LABEL_MENTION = re.compile(r"output\s*\(\s*([ab])\s*\)", re.IGNORECASE)


@dataclass(frozen=True)
class JudgePrompt:
    """A judge prompt: an optional system message and a user-message template with the three placeholders."""

    system: str
    template: str

    def __post_init__(self) -> None:
        absent = [name for name in PLACEHOLDERS if "{" + name + "}" not in self.template]
        if absent:
            raise ValueError(f"judge prompt template lacks the placeholder(s) {['{' + n + '}' for n in absent]}")

    @property
    def hash(self) -> str:
        """Short sha256 of the system message and the template (part of every cache key)."""
        payload = json.dumps([self.system, self.template], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]

    def messages(self, instruction: str, output_1: str, output_2: str) -> list[dict[str, str]]:
        """The chat messages asking to compare ``output_1`` (shown as a) with ``output_2`` (shown as b)."""
        values = {"instruction": instruction, "output_1": output_1, "output_2": output_2}
        user = _PLACEHOLDER.sub(lambda match: values[match.group(1)], self.template)
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + [{"role": "user", "content": user}]


def default_prompt() -> JudgePrompt:
    """The built-in one-shot forced-choice prompt."""
    return JudgePrompt(system=DEFAULT_SYSTEM, template=DEFAULT_TEMPLATE)


def load_prompt(path: Optional[str]) -> JudgePrompt:
    """The prompt in ``path`` (format in the module docstring), or the default one when ``path`` is ``None``.

    Raises:
        ValueError: naming the file when a section marker or a placeholder is missing.
    """
    if path is None:
        return default_prompt()
    text = Path(path).read_text(encoding="utf-8")
    system = ""
    if text.lstrip().startswith("[system]"):
        head, marker, user = text.lstrip()[len("[system]") :].partition("\n[user]\n")
        if not marker:
            raise ValueError(f"{path}: starts with [system] but has no line [user] before the user template")
        system, text = head.strip(), user
    try:
        return JudgePrompt(system=system, template=text)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def parse_label(text: Optional[str]) -> Optional[str]:
    """``"a"``, ``"b"`` or ``None`` from a plain-text reply.

    A bare label ("Output (a)", "(b)", "a.") counts; otherwise exactly one of the two labels must be mentioned as
    "Output (x)". A reply mentioning both or neither is unparseable (``None``).
    """
    if not text:
        return None
    bare = _BARE_LABEL.match(text.strip())
    if bare:
        return bare.group(1).lower()
    labels = {label.lower() for label in _LABEL_MENTION.findall(text)}
    return labels.pop() if len(labels) == 1 else None


def parse_tool_arguments(arguments: Optional[str]) -> Optional[str]:
    """``"a"``, ``"b"`` or ``None`` from the JSON arguments of a ``choose_output`` call."""
    try:
        value = json.loads(arguments or "")
    except json.JSONDecodeError:
        return None
    choice = value.get("output") if isinstance(value, dict) else None
    return parse_label(choice) if isinstance(choice, str) else None


def parse_message(message: Any) -> tuple[Optional[str], str]:
    """Read the judge's choice from an openai chat-completion message.

    Args:
        message: a ``ChatCompletionMessage`` (``content`` and optional ``tool_calls``).

    Returns:
        ``(choice, raw)``: ``"a"``/``"b"``/``None`` and the raw reply (text and tool calls) kept for the record.
    """
    calls = [call for call in (message.tool_calls or []) if getattr(call, "function", None) is not None]
    raw_calls = [{"name": call.function.name, "arguments": call.function.arguments} for call in calls]
    raw = json.dumps({"content": message.content, "tool_calls": raw_calls}, ensure_ascii=False)
    tool_choices = {parse_tool_arguments(call.function.arguments) for call in calls if call.function.name == TOOL_NAME}
    tool_choices.discard(None)
    if len(tool_choices) == 1:
        return tool_choices.pop(), raw
    if len(tool_choices) > 1:
        return None, raw  # contradicting tool calls: no guess
    return parse_label(message.content), raw
