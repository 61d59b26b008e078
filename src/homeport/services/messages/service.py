"""Anthropic's Messages API on the chat service: the same engines, and (through the one model-call
pipeline) the same keys, limits, budgets, usage and logs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ...protocol.messages import CountTokensRequest, MessagesRequest
from ..inference.chat import ChatPlan, ChatService
from ..inference.relay import Raw
from .translate import Event, Events, to_chat, to_message

__all__ = ["MessagesService", "MessagesPlan"]


@dataclass
class MessagesPlan:
    request: MessagesRequest
    chat: ChatPlan

    @property
    def estimate(self) -> tuple[int, int]:
        return self.chat.estimate

    @property
    def usage(self) -> Any:
        return self.chat.usage


class MessagesService:
    def __init__(self, chat: ChatService) -> None:
        self._chat = chat

    async def plan(self, body: MessagesRequest, project_id: str | None = None,
                   key_id: str | None = None) -> MessagesPlan:  # fmt: skip
        return MessagesPlan(body, await self._chat.plan(to_chat(body), project_id, key_id))

    async def create(self, plan: MessagesPlan) -> Raw:
        completion = await self._chat.create(plan.chat)
        return Raw(to_message(completion, plan.request.model, plan.request.stop_sequences), completion.usage)

    def stream(self, plan: MessagesPlan) -> AsyncIterator[Event]:
        return Events(plan.request.model, len(plan.chat.prompt)).of(self._chat.stream(plan.chat))

    async def count_tokens(self, body: CountTokensRequest) -> int:
        """Input tokens of a request, as the model would read it (its template, tools included)."""
        return len((await self._chat.plan(to_chat(body))).prompt)
