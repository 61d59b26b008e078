"""Server-sent events in OpenAI's framing: `data: {json}` per event, then `data: [DONE]`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from pydantic import BaseModel
from starlette.responses import StreamingResponse

from ..errors import HomeportError
from .errors import error_body

__all__ = ["event_stream"]

log = logging.getLogger("homeport")


def event_stream(
    first: BaseModel,
    rest: AsyncIterator[BaseModel],
    *,
    headers: dict[str, str] | None = None,
    on_close: Callable[[], Awaitable[None]] | None = None,
) -> StreamingResponse:
    """A streaming response whose first event was already produced (so errors before it were
    HTTP errors). `on_close` runs when the stream ends, however it ends."""

    async def frames() -> AsyncIterator[bytes]:
        try:
            yield _frame(first.model_dump_json())
            async for event in rest:
                yield _frame(event.model_dump_json())
        except HomeportError as exc:
            yield _frame(_json(error_body(exc)))
        except Exception:
            log.exception("stream failed")
            yield _frame(_json(error_body(HomeportError("The server had an error while streaming."))))
        finally:
            await rest.aclose()  # type: ignore[attr-defined]
            if on_close is not None:
                await on_close()
        yield b"data: [DONE]\n\n"

    all_headers = {"cache-control": "no-cache", **(headers or {})}
    return StreamingResponse(frames(), media_type="text/event-stream", headers=all_headers)


def _frame(payload: str) -> bytes:
    return f"data: {payload}\n\n".encode()


def _json(data: dict) -> str:
    import json

    return json.dumps(data)
