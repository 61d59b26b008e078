"""The Responses and Conversations APIs through the official SDK, on the real default model,
every body and streamed event validated against OpenAI's spec."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from pydantic import BaseModel, Field

from tests.conftest import API_KEY, create_key, homeport_cli
from tests.spec import validate, wire

MODEL = "smollm2-135m-instruct"
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                          "required": ["city"], "additionalProperties": False}, "strict": True}  # fmt: skip
EVENTS = {
    "response.created": "ResponseCreatedEvent", "response.in_progress": "ResponseInProgressEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent", "response.output_text.done": "ResponseTextDoneEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
    "response.file_search_call.in_progress": "ResponseFileSearchCallInProgressEvent",
    "response.file_search_call.searching": "ResponseFileSearchCallSearchingEvent",
    "response.file_search_call.completed": "ResponseFileSearchCallCompletedEvent",
    "response.completed": "ResponseCompletedEvent", "response.incomplete": "ResponseIncompleteEvent",
}  # fmt: skip


def test_a_response_is_created_stored_continued_and_deleted(client) -> None:
    first = client.responses.create(model=MODEL, instructions="Answer in one short sentence.",
                                    input="What colour is the sky?", max_output_tokens=40, temperature=0)  # fmt: skip
    validate("Response", wire(first))
    assert first.status in ("completed", "incomplete") and first.output_text
    assert first.usage.total_tokens == first.usage.input_tokens + first.usage.output_tokens
    counted = client.responses.input_tokens.count(model=MODEL, instructions="Answer in one short sentence.",
                                                  input="What colour is the sky?")  # fmt: skip
    validate("TokenCountsResource", wire(counted))
    assert counted.input_tokens == first.usage.input_tokens  # the same prompt the response read
    assert client.responses.retrieve(first.id).output_text == first.output_text
    second = client.responses.create(model=MODEL, input="Say that again.", previous_response_id=first.id,
                                     max_output_tokens=40)  # fmt: skip
    validate("Response", wire(second))
    assert second.previous_response_id == first.id
    assert second.usage.input_tokens > first.usage.input_tokens  # the first turn is in its context
    items = client.responses.input_items.list(second.id)
    validate("ResponseItemList", wire(items))
    assert [(i.type, i.role) for i in items.data] == [("message", "user")]
    deleted = client.responses.delete(first.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.create(model=MODEL, input="Hi", previous_response_id=first.id)
    assert err.value.body["param"] == "previous_response_id"


def test_a_stream_sends_every_event_in_order(client) -> None:
    with client.responses.stream(model=MODEL, input="Name two fruits.", max_output_tokens=30) as stream:
        events = list(stream)
    final = events[-1].response  # response.completed, or response.incomplete at the token limit
    for event in events:
        validate(EVENTS[event.type], wire(event))
    assert [e.sequence_number for e in events] == list(range(len(events)))  # from 0, no gaps
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]  # fmt: skip
    assert kinds[-4:-1] == ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == final.output_text == client.responses.retrieve(final.id).output_text


def test_function_calls_and_their_outputs(client) -> None:
    asked = client.responses.create(model=MODEL, input="What is the weather in Paris?", tools=[WEATHER],
                                    tool_choice="required", max_output_tokens=60)  # fmt: skip
    validate("Response", wire(asked))
    call = asked.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert isinstance(json.loads(call.arguments)["city"], str)  # constrained decoding: always parses
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, previous_response_id=asked.id, tools=[WEATHER],
                                input=[{"type": "function_call_output", "call_id": "call_nope", "output": "x"}])
    assert err.value.body["param"] == "input.[0].call_id"
    answered = client.responses.create(
        model=MODEL, previous_response_id=asked.id, tools=[WEATHER], max_output_tokens=40,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny", "c": 21}'}],
    )  # fmt: skip
    validate("Response", wire(answered))
    assert answered.output[-1].type == "message"


def test_structured_output_parses(client) -> None:
    class City(BaseModel):
        name: str = Field(max_length=20)
        country: str = Field(max_length=20)

    parsed = client.responses.parse(model=MODEL, input="Name a city in France.", text_format=City,
                                    max_output_tokens=80, temperature=0)  # fmt: skip
    validate("Response", wire(parsed))
    assert isinstance(parsed.output_parsed, City)


def test_conversations_keep_the_turns(client) -> None:
    conversation = client.conversations.create(items=[{"role": "user", "content": "My name is Ada."}],
                                               metadata={"topic": "names"})  # fmt: skip
    validate("ConversationResource", wire(conversation))
    reply = client.responses.create(model=MODEL, input="What is my name?", conversation=conversation.id,
                                    max_output_tokens=30)  # fmt: skip
    assert reply.conversation.id == conversation.id
    items = client.conversations.items.list(conversation.id, order="asc")
    validate("ConversationItemList", wire(items))
    assert [(i.type, getattr(i, "role", None)) for i in items.data][:2] == [("message", "user"), ("message", "user")]
    assert items.data[-1].id == reply.output[-1].id
    one = client.conversations.items.retrieve(items.data[0].id, conversation_id=conversation.id)
    assert one.content[0].text == "My name is Ada."
    added = client.conversations.items.create(conversation.id, items=[{"role": "user", "content": "Hello"}])
    validate("ConversationItemList", wire(added))
    client.conversations.items.delete(added.data[0].id, conversation_id=conversation.id)
    # A file search this server never ran is left out: nothing is added, and the answer says so.
    before = [i.id for i in client.conversations.items.list(conversation.id).data]
    foreign = {"type": "file_search_call", "id": "fs_elsewhere", "queries": ["x"], "status": "completed"}
    assert client.conversations.items.create(conversation.id, items=[foreign]).data == []
    assert [i.id for i in client.conversations.items.list(conversation.id).data] == before
    assert client.conversations.update(conversation.id, metadata={"topic": "x"}).metadata == {"topic": "x"}
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input="Hi", conversation=conversation.id, previous_response_id=reply.id)
    assert err.value.body["param"] == "previous_response_id"
    validate("DeletedConversationResource", wire(client.conversations.delete(conversation.id)))
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.create(model=MODEL, input="Hi", conversation=conversation.id)
    assert err.value.body["param"] == "conversation"


def test_file_search_answers_with_citations(server) -> None:
    secret = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "resp", "--project", "responses")
    client = openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0, timeout=120)
    text = "The lighthouse on Skerry Point was built in 1871 and its keeper was Agnes Moore."
    uploaded = client.files.create(file=("lighthouse.txt", text.encode()), purpose="assistants")
    store = client.vector_stores.create(name="facts")
    client.vector_stores.file_batches.create_and_poll(store.id, file_ids=[uploaded.id])
    tool = {"type": "file_search", "vector_store_ids": [store.id], "max_num_results": 3}
    found = client.responses.create(model=MODEL, input="Who kept the lighthouse on Skerry Point?", tools=[tool],
                                    include=["file_search_call.results"], max_output_tokens=40)  # fmt: skip
    validate("Response", wire(found))
    search, message = found.output[0], found.output[-1]
    assert search.type == "file_search_call" and search.results[0].filename == "lighthouse.txt"
    citations = message.content[0].annotations
    assert [(c.type, c.file_id) for c in citations] == [("file_citation", uploaded.id)]
    other = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError):  # another project's response and store are not found
        other.responses.retrieve(found.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model=MODEL, input="x", tools=[tool])


def test_bad_requests_name_their_param(client, server) -> None:
    cases = [
        ({"tools": [{"type": "web_search"}]}, "tools.[0].type"),
        ({"background": True, "store": False}, "store"),
        ({"input": [{"type": "input_image_x", "id": "x"}]}, "input.[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "http://x"}]}]},
         "input.[0].content.[0].type"),
        ({"max_output_tokens": 1}, "max_output_tokens"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"input": [{"id": "msg_missing"}]}, "input.[0].id"),
    ]  # fmt: skip
    for extra, param in cases:
        body = {"model": MODEL, "input": "Hi"} | extra
        r = httpx.post(f"{server.base_url}/responses", json=body, headers={"Authorization": f"Bearer {API_KEY}"})
        assert r.status_code == 400, (extra, r.text)
        validate("ErrorResponse", r.json())
        assert r.json()["error"]["param"] == param, (extra, r.json())
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="gpt-9", input="Hi")
    assert client.responses.create(model=MODEL, input="Still serving?", max_output_tokens=16).output_text


def test_a_key_scoped_to_chat_may_not_create_responses(server) -> None:
    secret = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "chat-only", "--endpoints", "chat")
    scoped = openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        scoped.responses.create(model=MODEL, input="Hi")
    with pytest.raises(openai.PermissionDeniedError):
        scoped.conversations.create()


def test_a_thread_moves_to_a_conversation(client, server) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "I like tea."},
                                                  {"role": "assistant", "content": "Noted: tea."}])  # fmt: skip
    out = homeport_cli({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "assistants", "export-thread", thread.id)
    conversation_id = out.strip().splitlines()[-1]
    items = client.conversations.items.list(conversation_id, order="asc")
    validate("ConversationItemList", wire(items))
    assert [(i.role, i.content[0].text) for i in items.data] == [("user", "I like tea."),
                                                                 ("assistant", "Noted: tea.")]  # fmt: skip
    reply = client.responses.create(model=MODEL, input="What do I like?", conversation=conversation_id,
                                    max_output_tokens=20)  # fmt: skip
    assert reply.usage.input_tokens > 20  # the thread's turns are in the prompt
    assert client.beta.threads.retrieve(thread.id).id == thread.id  # the thread stays


def test_compact_replaces_the_context_with_a_summary(client, server) -> None:
    first = client.responses.create(model=MODEL, input="My name is Ada and I build looms.", max_output_tokens=30)
    r = httpx.post(f"{server.base_url}/responses/compact", json={"model": MODEL, "previous_response_id": first.id},
                   headers={"Authorization": f"Bearer {API_KEY}"}, timeout=120)  # fmt: skip
    assert r.status_code == 200, r.text
    compacted = r.json()
    validate("CompactResource", compacted)
    assert [i["type"] for i in compacted["output"]] == ["message", "compaction"]  # the user's words kept
    assert compacted["usage"]["output_tokens"] > 0
    sdk = client.responses.compact(model=MODEL, previous_response_id=first.id)
    assert sdk.object == "response.compaction"
    then = [*compacted["output"], {"role": "user", "content": "Who am I?"}]
    follow = client.responses.create(model=MODEL, input=then, max_output_tokens=20)
    validate("Response", wire(follow))
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input=[{"type": "compaction", "encrypted_content": "not ours"}])
    assert err.value.body["param"] == "input.[0].encrypted_content"
