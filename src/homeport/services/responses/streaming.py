"""The Responses API's stream, as a state machine over the chat service's chunks: each chunk's
text and tool-call deltas become output items and their events, numbered from 0 without gaps.

    response.created → response.in_progress
    (file_search_call: output_item.added → .in_progress → .searching → .completed → output_item.done)
    message: output_item.added → content_part.added → output_text.delta … → output_text.done
             → content_part.done → output_item.done
    function_call: output_item.added → function_call_arguments.delta … → .done → output_item.done
    response.completed | response.incomplete
"""

from __future__ import annotations

import copy
from typing import Any

from ...ids import new_id
from ...protocol.chat import ChatChunkChoice, ChoiceLogprobs
from ..inference.relay import Raw
from .items import Item

__all__ = ["Events", "Output"]


class Events:
    """Numbers events as they are made."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self, kind: str, **fields: Any) -> Raw:
        event = {"type": kind, **fields, "sequence_number": self._next}
        self._next += 1
        return Raw(event)


class Output:
    """A response's output items, built from chat chunks; `feed` and `close` return their events."""

    def __init__(self, events: Events, output: list[Item], with_logprobs: bool) -> None:
        self._ev, self.items, self._with_logprobs = events, output, with_logprobs
        self._message: Item | None = None
        self._text: list[str] = []
        self._logprobs: list[dict[str, Any]] = []
        self._calls: dict[int, Item] = {}

    def searched(self, item: Item) -> list[Raw]:
        """A file search done before generating: its item and events, in the order OpenAI sends them."""
        index = len(self.items)
        self.items.append(item)
        where = {"output_index": index, "item_id": item["id"]}
        started = item | {"status": "in_progress", "results": None}
        return [self._ev("response.output_item.added", output_index=index, item=started),
                self._ev("response.file_search_call.in_progress", **where),
                self._ev("response.file_search_call.searching", **where),
                self._ev("response.file_search_call.completed", **where),
                self._ev("response.output_item.done", output_index=index, item=item)]  # fmt: skip

    def feed(self, choice: ChatChunkChoice) -> list[Raw]:
        events = []
        delta = choice.delta
        if delta.content:
            events += self._open_message()
            logprobs = _logprobs(choice.logprobs) if self._with_logprobs else []
            self._text.append(delta.content)
            self._logprobs += logprobs
            assert self._message is not None
            events.append(self._ev("response.output_text.delta", item_id=self._message["id"],
                                   output_index=self.items.index(self._message), content_index=0,
                                   delta=delta.content, logprobs=logprobs))  # fmt: skip
        for call in delta.tool_calls or []:
            fn = call.function or {}
            if call.index not in self._calls:
                item = {"type": "function_call", "id": new_id("fc_", 24), "call_id": call.id or new_id("call_", 24),
                        "name": fn.get("name") or "", "arguments": "", "status": "in_progress"}  # fmt: skip
                self._calls[call.index] = item
                self.items.append(item)
                events.append(self._ev("response.output_item.added", output_index=len(self.items) - 1,
                                       item=copy.deepcopy(item)))  # fmt: skip
            item = self._calls[call.index]
            if fn.get("arguments"):
                item["arguments"] += fn["arguments"]
                events.append(self._ev("response.function_call_arguments.delta", item_id=item["id"],
                                       output_index=self.items.index(item), delta=fn["arguments"]))  # fmt: skip
        return events

    def _open_message(self) -> list[Raw]:
        if self._message is not None:
            return []
        self._message = {"type": "message", "id": new_id("msg_", 24), "role": "assistant", "status": "in_progress",
                         "content": []}  # fmt: skip
        self.items.append(self._message)
        index = len(self.items) - 1
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return [self._ev("response.output_item.added", output_index=index, item=copy.deepcopy(self._message)),
                self._ev("response.content_part.added", item_id=self._message["id"], output_index=index,
                         content_index=0, part=part)]  # fmt: skip

    def close(self, incomplete: bool, annotations: list[dict[str, Any]]) -> list[Raw]:
        """Finish every open item; a message cut at the token limit is `incomplete`."""
        events = []
        if self._message is None and not self._calls:
            events += self._open_message()  # OpenAI answers with an empty message rather than nothing
        if self._message is not None:
            message, index = self._message, self.items.index(self._message)
            text = "".join(self._text)
            part = {"type": "output_text", "text": text, "annotations": annotations, "logprobs": self._logprobs}
            message |= {"content": [part], "status": "incomplete" if incomplete else "completed"}
            where = {"item_id": message["id"], "output_index": index, "content_index": 0}
            events += [self._ev("response.output_text.done", **where, text=text, logprobs=self._logprobs),
                       self._ev("response.content_part.done", **where, part=part),
                       self._ev("response.output_item.done", output_index=index, item=message)]  # fmt: skip
        for item in self._calls.values():
            item["status"] = "incomplete" if incomplete else "completed"
            index = self.items.index(item)
            events += [self._ev("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                                name=item["name"], arguments=item["arguments"]),
                       self._ev("response.output_item.done", output_index=index, item=item)]  # fmt: skip
        return events

    @property
    def text(self) -> str:
        return "".join(self._text)


def _logprobs(logprobs: ChoiceLogprobs | None) -> list[dict[str, Any]]:
    if logprobs is None or not logprobs.content:
        return []
    return [{"token": t.token, "logprob": t.logprob, "bytes": t.bytes,
             "top_logprobs": [{"token": a.token, "logprob": a.logprob, "bytes": a.bytes} for a in t.top_logprobs]}
            for t in logprobs.content]  # fmt: skip
