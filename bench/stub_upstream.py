"""A fast stand-in for an OpenAI-compatible server, for measuring what a proxy in front adds.

    python bench/stub_upstream.py --port 9000 [--chunks 20]

POST /v1/chat/completions answers at once: streamed, `--chunks` content chunks, a usage chunk
and [DONE]; otherwise one JSON completion. A bare ASGI app on uvicorn: as little work per
request as a server can do.
"""

from __future__ import annotations

import argparse
import json

import uvicorn


def make_app(chunks: int):  # type: ignore[no-untyped-def]
    def chunk(i: int, content: str | None, finish: str | None = None, usage: dict | None = None) -> bytes:
        body = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 0, "model": "stub",
                "choices": [] if usage else [{"index": 0, "delta": {"content": content} if content else {},
                                              "finish_reason": finish}]}  # fmt: skip
        if usage:
            body["usage"] = usage
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    usage = {"prompt_tokens": 10, "completion_tokens": chunks, "total_tokens": 10 + chunks}
    stream_body = (
        b"".join(
            [chunk(i, f"tok{i} ") for i in range(chunks)] + [chunk(chunks, None, "stop"), chunk(0, None, usage=usage)]
        )
        + b"data: [DONE]\n\n"
    )
    plain = json.dumps({"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": "stub",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                     "finish_reason": "stop"}], "usage": usage}).encode()  # fmt: skip

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        stream = b'"stream": true' in body or b'"stream":true' in body
        headers = [(b"content-type", b"text/event-stream" if stream else b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": stream_body if stream else plain})

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=20)
    args = parser.parse_args()
    uvicorn.run(make_app(args.chunks), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
