"""Grammar aspect: a grammar checker's matches as dense token penalties (the paper's MT aspect, "grammar error rate").

Every real response token gets ``correct_value`` (0); tokens overlapping a LanguageTool match get ``error_value``
(−1); all real tokens are placed. The metric is the number of matches per response token (lower is better).

Backends:
- ``http`` (default): a running LanguageTool server's public ``/v2/check`` API (``POST`` form fields ``text``,
  ``language``, ``disabledRules``; JSON reply ``{"matches": [{"offset", "length", "rule": {"id"}}]}``), called with
  the standard library (urllib) from a thread pool, with a timeout per request and the project's HTTP retry rule
  (``alarm_pl/retry.py``: 408/409/429/5xx, timeouts and connection errors; exponential backoff or Retry-After).
  Start a server with e.g. ``java -cp languagetool-server.jar org.languagetool.server.HTTPServer --port 8081``
  or the ``erikvl87/languagetool`` Docker image.
- ``local``: ``language_tool_python.LanguageTool``, which downloads LanguageTool on first use (this fails offline;
  the error says to run a server and use the ``http`` backend). Calls are sequential (the library keeps per-call
  state in class attributes).

- ``harper``: Harper (Automattic's Rust grammar checker, through ``harper-py``), in process and offline: no Java,
  no server, no download (``pip install harper-py``, in the ``aspects`` extra). Its lint spans are Python string
  indices (code points; checked on text with accents and emoji in ``tests/test_grammar.py``). ``language`` picks its
  dialect (``en-US``, ``en-GB``, ``en-AU``, ``en-CA``, ``en-IN``); ``disabled_rules`` takes Harper rule names (e.g.
  ``SpellCheck``, ``SentenceCapitalization``); text is checked as plain text.

What each backend catches (both count every match, spelling included, as the paper's LanguageTool setup did):
- LanguageTool (the paper's scorer): several thousand English rules in categories ``GRAMMAR`` (agreement, verb forms,
  articles), ``TYPOS`` (spelling, ``MORFOLOGIK_RULE_EN_US``), ``CONFUSED_WORDS`` (their/there, its/it's),
  ``PUNCTUATION``, ``TYPOGRAPHY`` (spacing), ``CASING``, ``COMPOUNDING``, ``REDUNDANCY``, ``STYLE``, ``COLLOCATIONS``,
  ``SEMANTICS`` and ``MISC`` (``org.languagetool.rules.Categories``), some of them statistical (n-gram) rules.
- Harper (2.13 in harper-py 0.2.0; 917 rules): lint kinds Agreement, BoundaryError, Capitalization, Eggcorn,
  Enhancement, Formatting, Grammar, Malapropism, Miscellaneous, Nonstandard, Punctuation, Readability, Redundancy,
  Regionalism, Repetition, Spelling, Style, Typo, Usage and WordChoice. On sample sentences it flags a/an errors
  ("an test"), repeated words ("the the"), subject-verb agreement ("He go"), their/there, "could of", lower-case
  sentence starts, doubled or stray spaces and misspellings (every Spanish word left in an English output is one).
  It has far fewer rules than LanguageTool (no n-gram statistics, fewer agreement and tense rules), so its error
  rates are lower and not comparable in value with the paper's; the direction (lower is better) and the alignment
  are the same.

A server that cannot be reached raises ``ScorerUnavailable`` naming the scorer and the URL — never a silent zero;
during training the run then stops at the rollout boundary with a checkpoint (``alarm_pl/faults.py``).
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, Optional

import torch

from alarm_pl.retry import Failure, RetryError, RetryPolicy, call_with_retries, is_retried_status, retry_after_seconds
from alarm_pl.rewards.base import Score, Scorer, ScorerError, ScorerUnavailable, ScoringInput, Span


def utf16_to_index(text: str, offsets: list[int]) -> list[int]:
    """Convert UTF-16 code-unit offsets (LanguageTool is Java) to Python string indices of ``text``.

    Characters outside the Basic Multilingual Plane (emoji) take two UTF-16 units but one Python index.
    """
    if all(ord(ch) <= 0xFFFF for ch in text):
        return list(offsets)
    unit_to_index, units = {}, 0
    for index, ch in enumerate(text):
        unit_to_index[units] = index
        units += 2 if ord(ch) > 0xFFFF else 1
    unit_to_index[units] = len(text)
    return [unit_to_index.get(offset, len(text)) for offset in offsets]


def match_spans(text: str, matches: list[dict]) -> list[Span]:
    """Character spans ``[start, end)`` in ``text`` of LanguageTool JSON matches (UTF-16 offsets converted)."""
    starts = utf16_to_index(text, [m["offset"] for m in matches])
    ends = utf16_to_index(text, [m["offset"] + m["length"] for m in matches])
    return list(zip(starts, ends))


HARPER_DIALECTS = {
    "en": "AMERICAN",
    "en-US": "AMERICAN",
    "en-GB": "BRITISH",
    "en-AU": "AUSTRALIAN",
    "en-CA": "CANADIAN",
    "en-IN": "INDIAN",
}
"""LanguageTool-style language codes → Harper dialects (Harper checks English only)."""


def start_harper(language: str, disabled_rules: list[str], scorer: str):
    """A ``harper.Linter`` for ``language`` with ``disabled_rules`` switched off.

    Raises:
        ScorerError: harper-py is not installed, the language is not an English dialect, or a rule name is unknown.
    """
    try:
        import harper
    except ImportError as err:
        raise ScorerError(
            f"scorer {scorer!r}: backend harper needs harper-py: pip install 'harper-py>=0.2' (or the "
            f"project's 'aspects' extra)"
        ) from err
    if language not in HARPER_DIALECTS:
        raise ScorerError(
            f"scorer {scorer!r}: Harper checks English only; language must be one of "
            f"{sorted(HARPER_DIALECTS)}, got {language!r}"
        )
    linter = harper.Linter(getattr(harper.Dialect, HARPER_DIALECTS[language]))
    known = linter.get_default_lint_config()
    unknown = sorted(set(disabled_rules) - set(known))
    if unknown:
        raise ScorerError(
            f"scorer {scorer!r}: disabled_rules {unknown} are not Harper rule names (e.g. "
            f"{sorted(known)[:5]}; harper.get_default_lint_config() lists all {len(known)})"
        )
    if disabled_rules:
        linter.set_lint_config({**linter.get_lint_config(), **{rule: False for rule in disabled_rules}})
    return linter


def grammar_values(
    token_spans: list[Span], error_spans: list[Span], length: int, correct_value: float, error_value: float
) -> torch.Tensor:
    """Per-token grammar values of one response.

    Args:
        token_spans: the response's ``length`` token character spans.
        error_spans: character spans of the grammar errors.
        length: T, the row length of the batch.
        correct_value, error_value: the values of clean and of erroneous tokens.

    Returns:
        (T,) float32: ``correct_value`` on the real tokens, ``error_value`` on those overlapping an error span,
        0 on padding.
    """
    from alarm_pl.rewards.align import tokens_overlapping

    values = torch.zeros(length, dtype=torch.float32)  # (T,)
    values[: len(token_spans)] = correct_value
    for start, end in error_spans:
        for token in tokens_overlapping(token_spans, start, end):
            values[token] = error_value
    return values


def _classify(err: Exception) -> Failure:
    """A failed LanguageTool request as the retry rule sees it (``alarm_pl.retry``); unknown errors propagate."""
    if isinstance(err, urllib.error.HTTPError):  # before URLError, its base class
        body = err.read().decode("utf-8", "replace")[:200]
        return Failure(is_retried_status(err.code), f"HTTP {err.code}: {body}", retry_after_seconds(err.headers))
    if isinstance(err, (urllib.error.URLError, OSError, http.client.HTTPException, ValueError)):
        return Failure(True, f"{type(err).__name__}: {getattr(err, 'reason', err)}")  # ValueError: not JSON
    raise err


class GrammarScorer(Scorer):
    """Grammar errors as dense token rewards (see the module docstring).

    Args:
        backend: ``http`` (a LanguageTool server at ``url``), ``local`` (``language_tool_python``) or ``harper``
            (Harper, in process and offline).
        url: the server's API root, ending in ``/v2``.
        language: language code of the responses (the paper: ``en-US``); Harper takes English dialects only.
        correct_value: value of every token outside a match (the paper: 0).
        error_value: value of tokens overlapping a match (the paper: −1).
        timeout: seconds per HTTP request.
        retries: further attempts after a failed request (connection error, timeout, HTTP 408, 409, 429 or 5xx).
        backoff: seconds before the first retry, doubled before each further one (with jitter), unless the server
            sends Retry-After.
        max_concurrency: parallel HTTP requests.
        disabled_rules: rule ids to ignore: LanguageTool's (e.g. ``["WHITESPACE_RULE"]``) or Harper's (e.g.
            ``["SpellCheck"]``).
        **kwargs: ``name``, ``weight``, ``normalizer``, ``shaping`` of ``Scorer``.
    """

    default_name = "grammar"

    def __init__(
        self,
        backend: Literal["http", "local", "harper"] = "http",
        url: str = "http://localhost:8081/v2",
        language: str = "en-US",
        correct_value: float = 0.0,
        error_value: float = -1.0,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_concurrency: int = 4,
        disabled_rules: Optional[list[str]] = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if backend not in ("http", "local", "harper"):
            raise ValueError(f"scorer {self.name!r}: backend must be 'http', 'local' or 'harper', got {backend!r}")
        if retries < 0 or max_concurrency < 1 or timeout <= 0:
            raise ValueError(f"scorer {self.name!r}: need retries >= 0, max_concurrency >= 1 and timeout > 0")
        self.backend, self.url, self.language = backend, url.rstrip("/"), language
        self.correct_value, self.error_value = float(correct_value), float(error_value)
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.max_concurrency = int(max_concurrency)
        self.disabled_rules = list(disabled_rules or [])
        self._tool = None

    def setup(self, device: torch.device) -> None:
        """``http``: check that the server answers (``GET /languages``); ``local``: start LanguageTool; ``harper``:
        build Harper's linter (about a second)."""
        if self.backend == "http":
            self._request(f"{self.url}/languages", data=None)
            return
        if self.backend == "harper":
            self._tool = start_harper(self.language, self.disabled_rules, self.name)
            return
        try:
            import language_tool_python

            self._tool = language_tool_python.LanguageTool(self.language)
            self._tool.disabled_rules.update(self.disabled_rules)
        except Exception as err:  # noqa: BLE001 - download, Java and server start-up fail in many ways
            raise ScorerError(
                f"scorer {self.name!r}: the local LanguageTool backend could not start ({type(err).__name__}: "
                f"{err}); it downloads LanguageTool on first use, which needs network access. Run a LanguageTool "
                f"server instead and use backend: http with url: http://HOST:PORT/v2"
            ) from err

    def teardown(self) -> None:
        if self._tool is not None and self.backend == "local":
            self._tool.close()
        self._tool = None

    def _request(self, url: str, data: Optional[bytes]) -> dict | list:
        """One HTTP call with retries (``alarm_pl.retry``); the decoded JSON reply.

        Raises:
            ScorerUnavailable: after the last failed attempt, or at once on a status that is not retried (e.g. 404).
        """

        def attempt() -> dict | list:
            with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=self.timeout) as reply:
                return json.loads(reply.read().decode("utf-8"))

        policy = RetryPolicy(max_retries=self.retries, backoff_base=self.backoff)
        try:
            return call_with_retries(attempt, _classify, policy)[0]
        except RetryError as err:
            raise ScorerUnavailable(
                f"scorer {self.name!r}: LanguageTool request to {url} failed after {err.attempts} "
                f"attempt(s) (timeout {self.timeout:g} s): {err.failure.message}. Is a LanguageTool "
                f"server running there?"
            ) from None

    def _check_http(self, text: str) -> list[Span]:
        """Error spans of one text from the server (no request for blank text)."""
        if not text.strip():
            return []
        form = {"text": text, "language": self.language}
        if self.disabled_rules:
            form["disabledRules"] = ",".join(self.disabled_rules)
        reply = self._request(f"{self.url}/check", data=urllib.parse.urlencode(form).encode("utf-8"))
        return match_spans(text, reply["matches"])

    def _check_local(self, text: str) -> list[Span]:
        """Error spans of one text from ``language_tool_python`` (which already converts its offsets)."""
        if self._tool is None:
            raise ScorerError(f"scorer {self.name!r}: call setup() before score()")
        if not text.strip():
            return []
        return [(m.offset, m.offset + m.error_length) for m in self._tool.check(text)]

    def _check_harper(self, text: str) -> list[Span]:
        """Error spans of one text from Harper (its spans are already Python string indices)."""
        if self._tool is None:
            raise ScorerError(f"scorer {self.name!r}: call setup() before score()")
        if not text.strip():
            return []
        return [(lint.span.start, lint.span.end) for lint in self._tool.lint(text, language="plaintext")]

    def check(self, texts: list[str]) -> list[list[Span]]:
        """Character spans of the grammar errors of each text (HTTP requests run in parallel; a Harper linter is
        not thread-safe, so Harper checks run one after the other)."""
        if self.backend == "local":
            return [self._check_local(text) for text in texts]
        if self.backend == "harper":
            return [self._check_harper(text) for text in texts]
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(self._check_http, texts))

    def score(self, inputs: ScoringInput) -> Score:
        """Values (B, T): ``correct_value`` on real tokens, ``error_value`` on error tokens; metric: errors/token."""
        mask = inputs.response_mask.bool()  # (B, T)
        spans = self.check(inputs.responses)
        rows = [
            grammar_values(inputs.token_spans[i], spans[i], mask.shape[1], self.correct_value, self.error_value)
            for i in range(len(inputs))
        ]
        values = torch.stack(rows).to(mask.device) if rows else torch.zeros(mask.shape)  # (B, T)
        counts = torch.tensor([float(len(s)) for s in spans], device=mask.device)  # (B,)
        metric = counts / inputs.lengths.clamp(min=1).float()  # (B,) empty responses: 0 / 1 = 0
        return Score(values=values * mask, placed=mask, metric=metric, higher_is_better=False)
