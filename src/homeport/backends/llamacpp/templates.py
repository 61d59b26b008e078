"""Chat templates: the GGUF's own Jinja template when it has one, else a named family format."""

from __future__ import annotations

from collections.abc import Callable

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ...errors import InvalidRequest
from ..base import Message

__all__ = ["ChatTemplate", "NAMED_TEMPLATES"]


def _chatml(messages: list[Message], bos: str) -> str:
    turns = [f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages]
    return "".join(turns) + "<|im_start|>assistant\n"


def _gemma(messages: list[Message], bos: str) -> str:
    # Gemma has no system role: its system text opens the first user turn.
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    out = [bos]
    for m in (m for m in messages if m.role != "system"):
        role = "model" if m.role == "assistant" else "user"
        text = m.content
        if system and role == "user":
            text, system = f"{system}\n\n{text}", ""
        out.append(f"<start_of_turn>{role}\n{text}<end_of_turn>\n")
    if system:
        out.append(f"<start_of_turn>user\n{system}<end_of_turn>\n")
    out.append("<start_of_turn>model\n")
    return "".join(out)


NAMED_TEMPLATES: dict[str, Callable[[list[Message], str], str]] = {"chatml": _chatml, "gemma": _gemma}


def _raise(message: str) -> None:
    raise InvalidRequest(f"The model's chat template rejected the conversation: {message}", param="messages")


class ChatTemplate:
    """Renders a conversation to prompt text (special tokens still as text)."""

    def __init__(self, *, jinja_source: str | None, named: str | None, bos: str, eos: str) -> None:
        self._bos, self._eos = bos, eos
        self._named = NAMED_TEMPLATES[named] if named else None
        self._jinja = None
        if self._named is None:
            if not jinja_source:
                raise ValueError("model has no chat template: set `chat_template` in its config")
            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = _raise
            self._jinja = env.from_string(jinja_source)

    def render(self, messages: list[Message]) -> str:
        if self._named is not None:
            return self._named(messages, self._bos)
        assert self._jinja is not None
        try:
            return self._jinja.render(
                messages=[{"role": m.role, "content": m.content} for m in messages],
                add_generation_prompt=True,
                bos_token=self._bos,
                eos_token=self._eos,
            )
        except TemplateError as exc:
            raise InvalidRequest(f"The model's chat template failed: {exc}", param="messages") from exc
