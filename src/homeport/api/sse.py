"""Server-sent events, the one encoder: OpenAI's `data: {json}` frames ending in `data: [DONE]`,
and the named form of the Assistants API (`event: thread.run.created` … `event: done`)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from starlette.responses import StreamingResponse

from ..errors import HomeportError
from .errors import anthropic_body, error_body

__all__ = ["event_stream", "named_event_stream"]

log = logging.getLogger(__name__)


class Event(Protocol):
    """A streamed object: a protocol model, or JSON relayed as is."""

    def model_dump_json(self) -> str: ...


def event_stream(
    first: Event,
    rest: AsyncIterator[Event],
    *,
    headers: dict[str, str] | None = None,
    on_close: Callable[[], Awaitable[None]] | None = None,
    style: str = "openai",
) -> StreamingResponse:
    """A streaming response whose first event was already produced (so errors before it were
    HTTP errors). `on_close` runs when the stream ends, however it ends. `style` "anthropic":
    events named by their `sse_event`, errors in Anthropic's shape, no `[DONE]`."""
    anthropic = style == "anthropic"

    async def frames() -> AsyncIterator[bytes]:
        try:  # only Anthropic's events are named (a missing attribute is slow to look up on a pydantic model)
            yield _frame(first.model_dump_json(), getattr(first, "sse_event", None) if anthropic else None)
            async for event in rest:
                yield _frame(event.model_dump_json(), getattr(event, "sse_event", None) if anthropic else None)
        except Exception as exc:
            body = _error(exc)
            if anthropic:
                status = exc.status if isinstance(exc, HomeportError) else 500
                yield _frame(json.dumps(anthropic_body(status, body["error"]["message"])), "error")
            else:
                yield _frame(json.dumps(body))
        finally:
            await rest.aclose()  # type: ignore[attr-defined]
            if on_close is not None:
                await on_close()
        if not anthropic:
            yield _frame("[DONE]")

    return _response(frames(), headers)


def named_event_stream(events: AsyncIterator[tuple[str, Any]]) -> StreamingResponse:
    """(event name, JSON data) pairs as named events, then `event: done` (the Assistants API's form)."""

    async def frames() -> AsyncIterator[bytes]:
        try:
            async for name, data in events:
                yield _frame(json.dumps(data), name)
        except Exception as exc:
            yield _frame(json.dumps(_error(exc)), "error")
        yield _frame("[DONE]", "done")

    return _response(frames(), None)


def _error(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, HomeportError):
        return error_body(exc)
    log.exception("stream failed")
    return error_body(HomeportError("The server had an error while streaming."))


def _response(frames: AsyncIterator[bytes], headers: dict[str, str] | None) -> StreamingResponse:
    return StreamingResponse(
        frames, media_type="text/event-stream", headers={"cache-control": "no-cache", **(headers or {})}
    )


def _frame(payload: str, event: str | None = None) -> bytes:
    return (f"event: {event}\n" if event else "").encode() + f"data: {payload}\n\n".encode()
