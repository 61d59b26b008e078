"""The fake chat engine's reply length (ModelConfig.fake_reply_tokens): what benches and tests stream."""

from __future__ import annotations

from homeport.backends.fake import FakeChatEngine


def test_a_longer_reply_extends_the_default_one() -> None:
    prompt = list(b"user: hello\nassistant: ")
    short = FakeChatEngine().reply(prompt, seed=1)
    long = FakeChatEngine(reply_tokens=1000).reply(prompt, seed=1)
    assert len(short) == 24 and len(long) == 1000
    assert long.startswith(short)
