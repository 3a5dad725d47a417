"""A tiny LanguageTool-compatible HTTP server for tests (stdlib only, 127.0.0.1, a free port, its own thread).

It answers ``GET /v2/languages`` and ``POST /v2/check`` in LanguageTool's JSON shape and finds three deterministic
"errors" (offsets in UTF-16 code units, as the real Java server):

- ``WORD_REPEAT``: a word repeated ("the the"), the span of both words;
- ``I_LOWERCASE``: a standalone lowercase "i";
- ``EN_A_VS_AN``: "a" before a vowel ("a apple"), the span of "a".

It can fail the first ``fail_times`` check requests with HTTP 500 and sleep ``delay`` seconds before answering.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

RULES = {
    "WORD_REPEAT": re.compile(r"\b(\w+)\s+\1\b", re.IGNORECASE),
    "I_LOWERCASE": re.compile(r"(?<!\w)i(?!\w)"),
    "EN_A_VS_AN": re.compile(r"\ba(?= [aeiouAEIOU])"),
}


def find_errors(text: str, disabled: set[str] = frozenset()) -> list[dict]:
    """LanguageTool-shaped matches of ``text``, sorted by offset, offsets/lengths in UTF-16 code units."""

    def units(s: str) -> int:
        return len(s.encode("utf-16-le")) // 2

    matches = []
    for rule_id, pattern in RULES.items():
        if rule_id in disabled:
            continue
        for m in pattern.finditer(text):
            matches.append(
                {
                    "message": rule_id,
                    "offset": units(text[: m.start()]),
                    "length": units(m.group(0)),
                    "replacements": [],
                    "context": {"text": text, "offset": 0, "length": 0},
                    "rule": {"id": rule_id, "issueType": "grammar", "category": {"id": "GRAMMAR"}},
                }
            )
    return sorted(matches, key=lambda m: m["offset"])


@dataclass
class LanguageToolStub:
    """The server's behaviour and what it saw. Set ``fail_times``/``delay`` before a request to change it."""

    fail_times: int = 0
    delay: float = 0.0
    check_requests: list[dict] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(stub: LanguageToolStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _reply(self, status: int, body: object) -> None:
            data = json.dumps(body).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out and left (timeout tests)
                pass

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/v2/languages":
                return self._reply(404, {"error": "not found"})
            self._reply(200, [{"name": "English (US)", "code": "en", "longCode": "en-US"}])

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v2/check":
                return self._reply(404, {"error": "not found"})
            form = urllib.parse.parse_qs(
                self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8"), keep_blank_values=True
            )
            with stub.lock:
                stub.check_requests.append(form)
                fail = stub.fail_times > 0
                stub.fail_times -= int(fail)
            time.sleep(stub.delay)
            if fail:
                return self._reply(500, {"error": "internal error (test)"})
            disabled = set(filter(None, form.get("disabledRules", [""])[0].split(",")))
            self._reply(200, {"matches": find_errors(form["text"][0], disabled)})

    return Handler


@pytest.fixture
def lt_server():
    """A running ``LanguageToolStub``; ``lt_server.url`` is its API root ``http://127.0.0.1:PORT/v2``."""
    stub = LanguageToolStub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}/v2"
    yield stub
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
