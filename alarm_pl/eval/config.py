"""The LLM judge's settings (the ``--judge.*`` options of ``python -m alarm_pl.eval compare``).

Each field's docstring is its ``--help`` (jsonargparse reads them, as for the training configuration's dataclasses).
The API key is never a setting: only the *name* of the environment variable holding it is, so a saved configuration,
a report or a command line cannot carry the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Optional

ToolMode = Literal["off", "auto", "required"]


@dataclass(frozen=True)
class JudgeConfig:
    """Settings of the LLM judge; every field is a ``--judge.<name>`` command-line option."""

    model: Optional[str] = None
    """Judge model name (e.g. gpt-3.5-turbo-1106); the judge is skipped when not given."""
    base_url: Optional[str] = None
    """OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1; default: the openai client's (OPENAI_BASE_URL or
    the hosted API)."""
    api_key_env: str = "OPENAI_API_KEY"
    """NAME of the environment variable holding the API key (the key itself is never an option); unset with
    --judge.base_url: a placeholder key is sent."""
    subset: Optional[int] = None
    """Judge a random subset of this many prompts (all when null)."""
    seed: int = 0
    """Seed of the random subset."""
    rpm: Optional[float] = None
    """Requests per minute, over all threads (unlimited when null)."""
    concurrency: int = 4
    """Number of requests in flight at once (threads)."""
    prompt_file: Optional[str] = None
    """File replacing the default prompt (see alarm_pl.eval.prompt)."""
    max_retries: int = 5
    """Retries of one request after a 408/409/429/5xx status, a timeout or a connection error (alarm_pl.retry; the
    openai client's own retries are disabled)."""
    timeout: float = 60.0
    """Seconds allowed for one request."""
    backoff_base: float = 1.0
    """First retry delay in seconds, doubled at each retry, unless the server sends Retry-After."""
    backoff_max: float = 60.0
    """Longest exponential-backoff delay in seconds."""
    retry_after_max: float = 600.0
    """Longest wait granted to a server's Retry-After, in seconds."""
    tool: ToolMode = "off"
    """Offer the choose_output tool: off (plain text only), auto (tool or text), required (force a tool call)."""
    max_tokens: Optional[int] = 50
    """max_tokens of a judge reply (not sent when null)."""
    cost_per_1k_input: float = 0.0
    """US$ per 1,000 input (prompt) tokens, for the cost estimate."""
    cost_per_1k_output: float = 0.0
    """US$ per 1,000 output (completion) tokens, for the cost estimate."""

    def __post_init__(self) -> None:
        checks = {
            "concurrency": (self.concurrency >= 1, "must be >= 1"),
            "max_retries": (self.max_retries >= 0, "must be >= 0"),
            "timeout": (self.timeout > 0, "must be > 0"),
            "rpm": (self.rpm is None or self.rpm > 0, "must be > 0 or null"),
            "subset": (self.subset is None or self.subset > 0, "must be > 0 or null"),
            "backoff_base": (self.backoff_base >= 0, "must be >= 0"),
            "backoff_max": (self.backoff_max >= 0, "must be >= 0"),
            "retry_after_max": (self.retry_after_max >= 0, "must be >= 0"),
            "tool": (self.tool in ("off", "auto", "required"), "must be off, auto or required"),
            "max_tokens": (self.max_tokens is None or self.max_tokens > 0, "must be > 0 or null"),
        }
        for name, (ok, rule) in checks.items():
            if not ok:
                raise ValueError(f"--judge.{name}: invalid value {getattr(self, name)!r} ({rule})")

    def public(self) -> dict[str, Any]:
        """The settings as a JSON-able dict for reports (holds the key's variable name, never the key)."""
        return dataclasses.asdict(self)
