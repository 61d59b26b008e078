"""The Responses API's pieces on the fake engines: items, the event state machine, continuation,
conversations and truncation — fast, no HTTP."""

from __future__ import annotations

import pytest

from homeport.errors import ContextLengthExceeded, InvalidRequest, NotFound
from homeport.protocol.responses import ResponseCreate
from homeport.services.responses.items import normalise, to_messages

pytestmark = pytest.mark.anyio

TOOL = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}


def _request(**fields) -> ResponseCreate:  # type: ignore[no-untyped-def]
    return ResponseCreate.model_validate({"model": "fake-chat"} | fields)


def test_items_are_normalised_and_become_chat_messages() -> None:
    known = {"fc_1": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "lookup",
                      "arguments": "{}", "status": "completed"}}  # fmt: skip
    items = normalise(_request(input=[
        {"role": "user", "content": "Hi"}, {"id": "fc_1"},
        {"type": "function_call", "call_id": "call_2", "name": "lookup", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "one"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "two"}]},
    ]).input, known)  # fmt: skip
    assert [i["type"] for i in items] == ["message", "function_call", "function_call", "function_call_output",
                                          "function_call_output"]  # fmt: skip
    assert all(i["id"] for i in items) and items[0]["content"] == [{"type": "input_text", "text": "Hi"}]
    messages = to_messages(items)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["call_1", "call_2"]  # one turn, two calls
    with pytest.raises(InvalidRequest) as err:
        normalise(_request(input=[{"id": "msg_gone"}]).input, {})
    assert err.value.param == "input.[0].id"
    with pytest.raises(InvalidRequest) as err:
        normalise(_request(input=[{"type": "function_call_output", "call_id": "nope", "output": ""}]).input, {})
    assert err.value.param == "input.[0].call_id"


async def test_a_streamed_tool_call_numbers_its_events(fake_app) -> None:
    service = fake_app.state.model_services["/v1/responses"].local
    plan = await service.plan(_request(input="Look it up", tools=[TOOL], tool_choice="required"), None)
    events = [e.data async for e in service.stream(plan)]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed",
    ]  # fmt: skip
    final = events[-1]["response"]
    assert final["output"][0]["name"] == "lookup" and final["status"] == "completed"
    assert final["usage"]["input_tokens"] == plan.estimate[0]
    stored = await service.responses.get(None, final["id"])
    assert stored == final  # saved before its last event


async def test_continuing_a_response_or_a_conversation(fake_app) -> None:
    service = fake_app.state.model_services["/v1/responses"].local
    first = (await service.create(await service.plan(_request(input="one"), None))).data
    second = (await service.create(await service.plan(_request(input="two", previous_response_id=first["id"]),
                                                      None))).data  # fmt: skip
    assert second["usage"]["input_tokens"] > first["usage"]["input_tokens"]
    with pytest.raises(NotFound):
        await service.plan(_request(input="x", previous_response_id="resp_missing"), None)
    conversation = await service.conversations.create(None, {}, normalise("start", {}))
    await service.create(await service.plan(_request(input="next", conversation=conversation["id"]), None))
    items = await service.conversations.items(None, conversation["id"])
    assert [(i["type"], i["role"]) for i in items] == [("message", "user"), ("message", "user"),
                                                       ("message", "assistant")]  # fmt: skip
    with pytest.raises(NotFound):  # another project's conversation
        await service.plan(_request(input="x", conversation=conversation["id"]), "proj_other")
    unstored = (await service.create(await service.plan(_request(input="x", store=False), None))).data
    with pytest.raises(NotFound):
        await service.responses.get(None, unstored["id"])


async def test_truncation_auto_drops_the_oldest_context(fake_app) -> None:
    service = fake_app.state.model_services["/v1/responses"].local
    long = "word " * 300  # fake tokens are bytes: 1,500 a turn, the context holds 2,048
    first = (await service.create(await service.plan(_request(input=long, max_output_tokens=16), None))).data
    with pytest.raises(ContextLengthExceeded) as err:
        await service.plan(_request(input=long, previous_response_id=first["id"]), None)
    assert err.value.param == "input"
    fits = await service.plan(_request(input=long, previous_response_id=first["id"], truncation="auto",
                                       max_output_tokens=16), None)  # fmt: skip
    assert fits.estimate[0] < 2048


async def test_truncation_auto_keeps_the_first_message_as_a_conversation_grows(fake_app) -> None:
    service = fake_app.state.model_services["/v1/responses"].local
    items = [{"role": "user", "content": f"message {n:03} " + "x" * 40} for n in range(100)]  # ~60 tokens each
    conversation = await service.conversations.create(None, {}, normalise(_request(input=items).input, {}))
    firsts = []
    for turn in range(12):
        plan = await service.plan(_request(input=f"turn {turn:02} " + "y" * 40, conversation=conversation["id"],
                                           truncation="auto", max_output_tokens=16), None)  # fmt: skip
        assert (2048 - 16) * 3 // 4 - 70 < plan.estimate[0] <= 2048 - 16  # within a quarter and a message of full
        assert f"turn {turn:02}" in plan.chat.request.messages[-1].content
        firsts.append(plan.chat.request.messages[0].content)
        await service.conversations.append(conversation["id"], plan.inputs)
    assert len(set(firsts)) <= 4  # 12 turns of ~60 tokens: 720 tokens, the spacing here is 256 (a quarter of ~1,900
    # rounded down to a power of two), where dropping the fewest changes the first message every turn


async def test_retention_deletes_a_projects_old_responses_and_idle_conversations(fake_app) -> None:
    service, projects = fake_app.state.model_services["/v1/responses"].local, fake_app.state.projects
    brief = await projects.create("brief")
    await projects.update(brief.id, response_retention_days=7)
    kept = (await service.create(await service.plan(_request(input="old but kept"), None))).data
    old = (await service.create(await service.plan(_request(input="old"), brief.id))).data
    conversation = await service.conversations.create(brief.id, {}, normalise("hello", {}))
    assert await service.retention.prune() == (0, 0)  # nothing is a week old yet
    week_later = old["created_at"] + 8 * 86400
    assert await service.retention.prune(now=week_later) == (1, 1)
    with pytest.raises(NotFound):
        await service.responses.get(brief.id, old["id"])
    with pytest.raises(NotFound):
        await service.conversations.items(brief.id, conversation["id"])
    assert (await service.responses.get(None, kept["id"]))["id"] == kept["id"]  # no retention: kept
