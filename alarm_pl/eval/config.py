"""The LLM judge's settings (the ``--judge.*`` options of ``python -m alarm_pl.eval compare``).

The API key is never a setting: only the *name* of the environment variable holding it is, so a saved configuration,
a report or a command line cannot carry the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

ToolMode = Literal["off", "auto", "required"]


def _option(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class JudgeConfig:
    """Settings of the LLM judge; every field is a ``--judge.<name>`` command-line option."""

    model: Optional[str] = _option(None, "judge model name (e.g. gpt-3.5-turbo-1106); the judge is skipped "
                                         "when not given")
    base_url: Optional[str] = _option(None, "OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1; default: "
                                            "the openai client's (OPENAI_BASE_URL or the hosted API)")
    api_key_env: str = _option("OPENAI_API_KEY", "NAME of the environment variable holding the API key (the key "
                                                 "itself is never an option); unset with --judge.base_url: a "
                                                 "placeholder key is sent")
    subset: Optional[int] = _option(None, "judge a random subset of this many prompts (all when not given)")
    seed: int = _option(0, "seed of the random subset")
    rpm: Optional[float] = _option(None, "requests per minute, over all threads (unlimited when not given)")
    concurrency: int = _option(4, "number of requests in flight at once (threads)")
    prompt_file: Optional[str] = _option(None, "file replacing the default prompt (see alarm_pl.eval.prompt)")
    max_retries: int = _option(5, "retries of one request after a 408/409/429/5xx status, a timeout or a "
                                  "connection error (the openai client's own retries are disabled)")
    timeout: float = _option(60.0, "seconds allowed for one request")
    backoff_base: float = _option(1.0, "first retry delay in seconds, doubled at each retry, unless the server "
                                       "sends Retry-After")
    backoff_max: float = _option(60.0, "longest exponential-backoff delay in seconds")
    retry_after_max: float = _option(600.0, "longest wait granted to a server's Retry-After, in seconds")
    tool: ToolMode = _option("off", "offer the choose_output tool: off (plain text only), auto (tool or text), "
                                     "required (force a tool call)")
    max_tokens: Optional[int] = _option(50, "max_tokens of a judge reply (not sent when not given)")
    cost_per_1k_input: float = _option(0.0, "US$ per 1,000 input (prompt) tokens, for the cost estimate")
    cost_per_1k_output: float = _option(0.0, "US$ per 1,000 output (completion) tokens, for the cost estimate")

    def __post_init__(self) -> None:
        checks = {
            "concurrency": self.concurrency >= 1,
            "max_retries": self.max_retries >= 0,
            "timeout": self.timeout > 0,
            "rpm": self.rpm is None or self.rpm > 0,
            "subset": self.subset is None or self.subset > 0,
            "backoff_base": self.backoff_base >= 0,
            "backoff_max": self.backoff_max >= 0,
            "retry_after_max": self.retry_after_max >= 0,
            "tool": self.tool in ("off", "auto", "required"),
            "max_tokens": self.max_tokens is None or self.max_tokens > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"--judge.{name}: invalid value {getattr(self, name)!r} "
                                 f"({self.help(name)})")

    @classmethod
    def help(cls, name: str) -> str:
        """The help text of the field ``name``."""
        return next(f.metadata["help"] for f in dataclasses.fields(cls) if f.name == name)

    def public(self) -> dict[str, Any]:
        """The settings as a JSON-able dict for reports (holds the key's variable name, never the key)."""
        return dataclasses.asdict(self)
