"""`POST /v1/responses/compact`: a long context made short. The model summarises every turn; the
user's own messages are kept as they were, and the rest is replaced by one `compaction` item
whose `encrypted_content` carries the summary (opaque to clients; read back by items.py when the
item comes in as input)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidRequest
from ...ids import new_id
from ...protocol.chat import ChatCompletionRequest
from ...protocol.common import Usage
from ...protocol.responses import ResponseCompact
from ..inference.chat import ChatPlan, ChatService
from ..inference.relay import Raw
from ..kit import Kit
from .items import Item, normalise, sealed, to_messages
from .service import OverChat
from .store import ResponseStore

__all__ = ["Compaction"]

_ASK = ("Summarise our conversation so far in a few sentences for yourself to continue it later. Keep names, "
        "numbers, decisions and open questions.")  # fmt: skip
_SUMMARY_TOKENS = 256


@dataclass
class CompactPlan(OverChat):
    chat: ChatPlan
    items: list[Item]


class Compaction:
    def __init__(self, kit: Kit) -> None:
        self._chat, self._responses = ChatService(kit.registry), ResponseStore(kit.db)

    async def plan(self, req: ResponseCompact, project_id: str | None, key_id: str | None = None) -> CompactPlan:
        history: list[Item] = []
        if req.previous_response_id is not None:
            history = await self._responses.context(project_id, req.previous_response_id, "previous_response_id")
        items = history + normalise(req.input, {i["id"]: i for i in history})
        if not items:
            raise InvalidRequest("Give 'input' or 'previous_response_id': there is nothing to compact.", param="input")
        system = [{"role": "system", "content": req.instructions}] if req.instructions else []
        messages = system + to_messages(items) + [{"role": "user", "content": _ASK}]
        body = {"model": req.model, "messages": messages, "max_completion_tokens": _SUMMARY_TOKENS, "temperature": 0}
        return CompactPlan(await self._chat.plan(ChatCompletionRequest.model_validate(body), project_id), items)

    async def create(self, plan: CompactPlan) -> Raw:
        answer = await self._chat.create(plan.chat)
        text = answer.choices[0].message.content or ""
        kept = [i for i in plan.items if i["type"] == "message" and i["role"] == "user"]
        compaction = {"type": "compaction", "id": new_id("cmp_", 24), "encrypted_content": sealed(text)}
        usage = plan.chat.usage or Usage.of(0, 0)
        cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
        resource: dict[str, Any] = {
            "id": new_id("resp_", 40), "object": "response.compaction", "created_at": int(time.time()),
            "output": [*kept, compaction],
            "usage": {"input_tokens": usage.prompt_tokens,
                      "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
                      "output_tokens": usage.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": usage.total_tokens},
        }  # fmt: skip
        return Raw(resource, usage=usage)
