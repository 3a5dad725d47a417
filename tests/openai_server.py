"""A small scripted OpenAI-compatible ``/v1/chat/completions`` server for the judge tests.

Runs ``http.server`` in a thread on 127.0.0.1 (a free port). It reads the two outputs from the last "## Output (a):"
and "## Output (b):" sections of the user message (the layout of the default judge prompt) and answers by a rule:

- ``rule``: ``longer`` (the longer output wins; equal lengths: a), ``position_a`` (always a), ``unparseable``
  (a reply naming no label);
- ``reply``: ``tool`` (a ``choose_output`` tool call when tools are offered) or ``text`` ("Output (x)");
- ``failures``: scripted failures taken one per request, in order, before normal answers:
  ``{"status": 429, "headers": {"Retry-After": "1"}}``, ``{"status": 500}``, ``{"sleep": 2.0}`` (then answer);
- ``always``: the same failure for every request (e.g. ``{"sleep": 1.0}`` to time every request out);
- ``hang_after``: requests after this many answered ones block until ``release()`` and are never answered.

It records every request: its arrival time, Authorization header, outputs, and whether it was answered.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

PROMPT_TOKENS = 100  # fixed usage per reply, so costs are easy to compute by hand
COMPLETION_TOKENS = 5


@dataclass
class Seen:
    """One request as the server saw it."""

    time: float
    authorization: Optional[str]
    output_a: str
    output_b: str
    tools_offered: bool
    answered: bool = False


def outputs_of(user_message: str) -> tuple[str, str]:
    """The texts of the last Output (a) and Output (b) sections of the default prompt layout."""
    after_a = user_message.rsplit("## Output (a):\n", 1)[1]
    output_a, after_b = after_a.split("\n\n## Output (b):\n", 1)
    output_b = after_b.rsplit("\n\n## Which output", 1)[0]
    return output_a, output_b


@dataclass
class OpenAIServer:
    """The scripted server; use as a context manager (``with OpenAIServer(...) as server: server.url``)."""

    rule: str = "longer"
    reply: str = "text"
    failures: list = field(default_factory=list)
    always: Optional[dict] = None
    hang_after: Optional[int] = None
    seen: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._httpd: Optional[ThreadingHTTPServer] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def answered(self) -> list:
        return [s for s in self.seen if s.answered]

    def release(self) -> None:
        """Let hanging requests end (unanswered)."""
        self._release.set()

    def __enter__(self) -> "OpenAIServer":
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        serve = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        serve.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()

    def choose(self, output_a: str, output_b: str) -> Optional[str]:
        if self.rule == "position_a":
            return "a"
        if self.rule == "unparseable":
            return None
        return "a" if len(output_a) >= len(output_b) else "b"

    def plan(self, seen: Seen) -> dict:
        """Register the request and pick what to do with it (a failure, a hang or an answer)."""
        with self._lock:
            self.seen.append(seen)
            if self.failures:
                return self.failures.pop(0)
            if self.always is not None:
                return self.always
            if self.hang_after is not None and len(self.answered) >= self.hang_after:
                return {"hang": True}
            return {}

    def completion(self, model: str, choice: Optional[str], tools_offered: bool) -> dict:
        """A chat.completion object answering ``choice`` as a tool call or as text."""
        message: dict = {
            "role": "assistant",
            "content": "I cannot decide between them." if choice is None else f"Output ({choice})",
        }
        if choice is not None and self.reply == "tool" and tools_offered:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_0",
                        "type": "function",
                        "function": {"name": "choose_output", "arguments": json.dumps({"output": choice})},
                    }
                ],
            }
        return {
            "id": "chatcmpl-0",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if "tool_calls" in message else "stop"}
            ],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": COMPLETION_TOKENS,
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            },
        }


def _handler_for(server: OpenAIServer) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: dict, headers: Optional[dict] = None) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                for name, value in {
                    "Content-Type": "application/json",
                    "Content-Length": str(len(data)),
                    **(headers or {}),
                }.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if not self.path.endswith("/chat/completions"):
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            user = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
            seen = Seen(
                time=time.monotonic(),
                authorization=self.headers.get("Authorization"),
                output_a=outputs_of(user)[0],
                output_b=outputs_of(user)[1],
                tools_offered=bool(body.get("tools")),
            )
            plan = server.plan(seen)
            if plan.get("hang"):
                server._release.wait(timeout=30)
                return None
            if "status" in plan:
                return self._send(
                    plan["status"], {"error": {"message": f"scripted {plan['status']}"}}, plan.get("headers")
                )
            time.sleep(plan.get("sleep", 0.0))
            seen.answered = True
            return self._send(
                200, server.completion(body["model"], server.choose(seen.output_a, seen.output_b), seen.tools_offered)
            )

    return Handler
