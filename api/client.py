"""A small streaming client for ``ragline chat`` (httpx, a core dependency; the
``openai`` package works as well, see the tests)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx


class ChatError(Exception):
    pass


@dataclass(slots=True)
class Reply:
    """Filled while streaming: the answer so far, then its sources and usage."""

    text: str = ""
    finish_reason: str | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] | None = None

    @property
    def cited(self) -> list[dict[str, Any]]:
        return [s for s in self.sources if s.get("cited")]

    @property
    def attributed(self) -> list[dict[str, Any]]:
        return [s for s in self.sources if s.get("attributed")]


class ChatClient:
    def __init__(self, base_url: str, api_key: str | None = None, timeout_s: float = 300) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=5.0),
        )

    def close(self) -> None:
        self.http.close()

    def wait_ready(self, seconds: float) -> bool:
        """Poll /health until the server answers (it listens once its engine is up)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                if self.http.get("/health").status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            if time.monotonic() >= deadline:
                return False
            time.sleep(1.0)

    def stream(
        self,
        messages: list[dict[str, str]],
        collection: str,
        reply: Reply,
        max_tokens: int | None = None,
    ) -> Iterator[str]:
        """Yields the answer's text pieces, filling ``reply`` (sources once it ends)."""
        body: dict[str, Any] = {
            "model": collection,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if max_tokens:
            body["max_tokens"] = max_tokens
        try:
            with self.http.stream("POST", "/v1/chat/completions", json=body) as response:
                if response.status_code != 200:
                    response.read()
                    raise ChatError(_error_message(response))
                for data in _sse_data(response.iter_lines()):
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise ChatError(chunk["error"].get("message", "generation failed"))
                    for choice in chunk.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content") or ""
                        reply.finish_reason = choice.get("finish_reason") or reply.finish_reason
                        if piece:
                            reply.text += piece
                            yield piece
                    if "sources" in chunk:
                        reply.sources = chunk["sources"] or []
                        reply.usage = chunk.get("usage")
        except httpx.ConnectError:
            raise ChatError(
                f"no ragline server at {self.base_url} (start one with `ragline serve`)"
            ) from None
        except httpx.TransportError as exc:
            raise ChatError(f"connection to {self.base_url} failed: {exc}") from None


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The ``data`` of each server-sent event (comments such as pings skipped)."""
    buffer: list[str] = []
    for line in lines:
        if not line:
            if buffer:
                yield "\n".join(buffer)
                buffer = []
        elif line.startswith("data:"):
            buffer.append(line[5:].removeprefix(" "))
    if buffer:
        yield "\n".join(buffer)


def _error_message(response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:300]
    return f"{response.status_code}: {message}"


def format_source(source: dict[str, Any]) -> str:
    where = [source.get("source") or "?"]
    if source.get("page") is not None:
        where.append(f"page {source['page']}")
    if source.get("headings"):
        where.append(" > ".join(source["headings"]))
    return f"[{source.get('number')}] " + ", ".join(where)
