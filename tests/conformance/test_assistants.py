"""Assistants v2 through the official SDK's `client.beta` resources and helpers, on the real default
chat model: assistants, threads, messages, runs (polling and streaming), function calls answered
with tool outputs, file search with citations, run steps; project isolation; a thread continued
after a restart, and a run interrupted by a restart finishing instead of hanging."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from openai import AssistantEventHandler

from tests.conftest import create_key, start_server, stop_server
from tests.spec import validate

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MODEL = "smollm2-135m-instruct"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def _dump(obj) -> dict:
    return obj.model_dump(mode="json", exclude_unset=True)


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    secret = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "asst", "--project", "assistants")
    return openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0, timeout=120)


def test_assistants_threads_and_messages_crud(client) -> None:
    beta = client.beta
    assistant = beta.assistants.create(model=MODEL, name="Helper", instructions="Be brief.", tools=[WEATHER],
                                       metadata={"team": "a"})  # fmt: skip
    validate("AssistantObject", _dump(assistant))
    assert beta.assistants.retrieve(assistant.id).name == "Helper"
    assert beta.assistants.update(assistant.id, name="Helper 2").name == "Helper 2"
    assert assistant.id in [a.id for a in beta.assistants.list()]
    with pytest.raises(openai.BadRequestError) as err:
        beta.assistants.create(model=MODEL, tools=[{"type": "code_interpreter"}])
    assert err.value.body["param"] == "tools.[0].type"
    with pytest.raises(openai.NotFoundError):
        beta.assistants.create(model="gpt-9")

    thread = beta.threads.create(messages=[{"role": "user", "content": "Hello"}], metadata={"k": "v"})
    validate("ThreadObject", _dump(thread))
    message = beta.threads.messages.create(thread.id, role="user", content="Second")
    validate("MessageObject", _dump(message))
    listed = beta.threads.messages.list(thread.id, order="asc")
    validate("ListMessagesResponse", _dump(listed))
    assert [m.content[0].text.value for m in listed.data] == ["Hello", "Second"]
    assert beta.threads.messages.update(message.id, thread_id=thread.id, metadata={"x": "1"}).metadata == {"x": "1"}
    assert beta.threads.messages.delete(message.id, thread_id=thread.id).deleted
    assert beta.threads.delete(thread.id).deleted
    with pytest.raises(openai.NotFoundError):
        beta.threads.retrieve(thread.id)
    assert beta.assistants.delete(assistant.id).deleted


def test_run_create_and_poll(client) -> None:
    beta = client.beta
    assistant = beta.assistants.create(model=MODEL, instructions="You answer in one short sentence.")
    thread = beta.threads.create(messages=[{"role": "user", "content": "What is the capital of France?"}])
    run = beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=256)
    validate("RunObject", _dump(run))
    assert run.status in ("completed", "incomplete") and run.usage and run.usage.completion_tokens > 0
    messages = beta.threads.messages.list(thread.id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant"] and messages[1].run_id == run.id
    assert messages[1].content[0].text.value
    steps = beta.threads.runs.steps.list(run.id, thread_id=thread.id)
    validate("ListRunStepsResponse", _dump(steps))
    assert [s.type for s in steps.data] == ["message_creation"]
    assert steps.data[0].step_details.message_creation.message_id == messages[1].id


def test_create_thread_and_run(client) -> None:
    """POST /v1/threads/runs: a new thread with its messages, run at once (found unreachable by the
    authorization matrix: `/v1/threads/{thread_id}` took `runs` for a thread id)."""
    beta = client.beta
    assistant = beta.assistants.create(model=MODEL, instructions="You answer in one short sentence.")
    thread = {"messages": [{"role": "user", "content": "Say hello."}]}
    run = beta.threads.create_and_run_poll(assistant_id=assistant.id, thread=thread, max_completion_tokens=256)
    validate("RunObject", _dump(run))
    assert run.status in ("completed", "incomplete")
    messages = beta.threads.messages.list(run.thread_id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant"] and messages[1].run_id == run.id


def test_function_call_then_tool_outputs(client) -> None:
    beta = client.beta
    assistant = beta.assistants.create(model=MODEL, tools=[WEATHER], instructions="Use tools to answer.")
    thread = beta.threads.create(messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    forced = {"type": "function", "function": {"name": "get_weather"}}
    run = beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tool_choice=forced, max_completion_tokens=256
    )
    assert run.status == "requires_action"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert calls[0].function.name == "get_weather" and "city" in calls[0].function.arguments
    with pytest.raises(openai.BadRequestError):  # a second run while this one waits
        beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    with pytest.raises(openai.BadRequestError) as err:
        beta.threads.runs.submit_tool_outputs(run.id, thread_id=thread.id,
                                              tool_outputs=[{"tool_call_id": "call_nope", "output": "x"}])  # fmt: skip
    assert err.value.body["param"] == "tool_outputs.[0].tool_call_id"
    done = beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": calls[0].id, "output": "Sunny, 24 C"}]
    )
    assert done.status in ("completed", "incomplete")
    steps = beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    assert steps[0].step_details.tool_calls[0].function.output == "Sunny, 24 C"


def test_streaming_run_and_tool_outputs_stream(client) -> None:
    beta = client.beta
    assistant = beta.assistants.create(model=MODEL, tools=[WEATHER])
    thread = beta.threads.create(messages=[{"role": "user", "content": "Weather in Rome?"}])

    class Recorder(AssistantEventHandler):
        def __init__(self) -> None:
            super().__init__()
            self.events: list[str] = []
            self.text = ""

        def on_event(self, event) -> None:  # noqa: ANN001
            self.events.append(event.event)

        def on_text_delta(self, delta, snapshot) -> None:  # noqa: ANN001
            self.text += delta.value or ""

    first = Recorder()
    forced = {"type": "function", "function": {"name": "get_weather"}}
    with beta.threads.runs.stream(
        thread_id=thread.id,
        assistant_id=assistant.id,
        event_handler=first,
        tool_choice=forced,
        max_completion_tokens=256,
    ) as stream:
        stream.until_done()
    assert first.events[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert first.events[-1] == "thread.run.requires_action"
    run = first.current_run
    assert run is not None and run.status == "requires_action"
    call = run.required_action.submit_tool_outputs.tool_calls[0]

    second = Recorder()
    with beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id, run_id=run.id, tool_outputs=[{"tool_call_id": call.id, "output": "Rain, 12 C"}],
        event_handler=second,
    ) as stream:  # fmt: skip
        stream.until_done()
    assert "thread.message.created" in second.events and "thread.message.delta" in second.events
    assert second.events[-1] in ("thread.run.completed", "thread.run.incomplete")
    final = beta.threads.messages.list(thread.id).data[0]
    assert final.role == "assistant" and final.content[0].text.value == second.text


def test_file_search_cites_its_sources(client) -> None:
    beta = client.beta
    sky = client.files.create(file=("sky.md", b"The sky is blue because air scatters blue sunlight more than red."),
                              purpose="assistants")  # fmt: skip
    trains = client.files.create(file=("trains.txt", b"The night train to Vienna leaves at 22:15."),
                                 purpose="assistants")  # fmt: skip
    store = client.vector_stores.create()
    # As OpenAI asks: a run does not wait for the assistant's store to finish processing.
    client.vector_stores.file_batches.create_and_poll(vector_store_id=store.id, file_ids=[sky.id, trains.id])
    assistant = beta.assistants.create(model=MODEL, tools=[{"type": "file_search"}],
                                       tool_resources={"file_search": {"vector_store_ids": [store.id]}})  # fmt: skip
    thread = beta.threads.create(messages=[{"role": "user", "content": "Why is the sky blue?"}])
    run = beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=300)
    assert run.status in ("completed", "incomplete")
    answer = beta.threads.messages.list(thread.id).data[0].content[0].text
    citations = [a for a in answer.annotations if a.type == "file_citation"]
    assert citations and citations[0].file_citation.file_id == sky.id
    assert answer.value[citations[0].start_index : citations[0].end_index] == citations[0].text
    steps = beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    search = steps[0].step_details.tool_calls[0]
    assert search.type == "file_search" and search.file_search.results[0].file_id == sky.id

    # A message attachment goes into the thread's own vector store.
    other = beta.threads.create(messages=[{"role": "user", "content": "When does the train leave?",
                                           "attachments": [{"file_id": trains.id,
                                                            "tools": [{"type": "file_search"}]}]}])  # fmt: skip
    ids = other.tool_resources.file_search.vector_store_ids
    assert len(ids) == 1 and client.vector_stores.files.list(vector_store_id=ids[0]).data[0].id == trains.id


def test_other_projects_see_nothing(server, client) -> None:
    beta = client.beta
    assistant = beta.assistants.create(model=MODEL)
    thread = beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    message = beta.threads.messages.list(thread.id).data[0]
    other = openai.OpenAI(base_url=server.base_url, max_retries=0, api_key=create_key(
        {"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "spy", "--project", "elsewhere"))  # fmt: skip
    for call in (
        lambda: other.beta.assistants.retrieve(assistant.id),
        lambda: other.beta.assistants.delete(assistant.id),
        lambda: other.beta.threads.retrieve(thread.id),
        lambda: other.beta.threads.messages.list(thread.id),
        lambda: other.beta.threads.messages.retrieve(message.id, thread_id=thread.id),
        lambda: other.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert assistant.id not in [a.id for a in other.beta.assistants.list()]


FAKE = [{"id": "fake-chat", "version": "v1", "kind": "chat", "backend": "fake"},
        {"id": "fake-embed", "version": "v1", "kind": "embedding", "backend": "fake"}]  # fmt: skip


SLOW = [{**FAKE[0], "fake_token_delay_s": 0.25}, FAKE[1]]  # a pass takes ~6 s: long enough to kill mid-way


def _kill_mid_run(client: openai.OpenAI, server, thread_id: str, assistant_id: str) -> str:  # type: ignore[no-untyped-def]
    """Start a run and kill -9 its server once the answer is being written; returns the run id."""
    run = client.beta.threads.runs.create(thread_id=thread_id, assistant_id=assistant_id)
    deadline = time.monotonic() + 30
    while not [m for m in client.beta.threads.messages.list(thread_id).data if m.role == "assistant"]:
        assert time.monotonic() < deadline, "the run never started writing"
        time.sleep(0.1)
    server.process.kill()  # SIGKILL: no shutdown, no cleanup; the pass is half-written
    server.process.wait()
    return run.id


def test_a_run_cut_off_by_a_crash_is_run_again_after_restart_and_the_thread_continues(tmp_path) -> None:
    config = {"models": SLOW, "vector_store_model": "fake-embed", "run_heartbeat_s": 2}
    server = start_server(tmp_path / "a", config)
    data = {"HOMEPORT_DATA_DIR": str(server.data_dir)}
    try:
        secret = create_key(data, "--name", "k")
        client = openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0)
        assistant = client.beta.assistants.create(model="fake-chat")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "day one"}])
        run_id = _kill_mid_run(client, server, thread.id, assistant.id)
    finally:
        stop_server(server)
    server = start_server(tmp_path / "b", config, env=data)
    try:
        client = openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0)
        resumed = client.beta.threads.runs.poll(run_id, thread_id=thread.id, poll_interval_ms=200)
        assert resumed.status == "completed"
        client.beta.threads.messages.create(thread.id, role="user", content="day two")
        second = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
        assert second.status == "completed"
        messages = client.beta.threads.messages.list(thread.id, order="asc").data
        assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]  # the cut-off half is gone
        assert all(m.status == "completed" for m in messages if m.role == "assistant")
        steps = client.beta.threads.runs.steps.list(run_id, thread_id=thread.id).data
        assert [s.status for s in steps] == ["completed"]
    finally:
        stop_server(server)


def test_on_postgresql_replicas_share_runs_through_the_job_queue(tmp_path, replica_env) -> None:
    """Replicas on one PostgreSQL and Redis: a run cut off by a replica's crash is finished by
    another's worker, and an API-only replica streams a run a worker replica executes."""
    env = replica_env
    config = {"models": SLOW, "vector_store_model": "fake-embed", "run_heartbeat_s": 2}
    servers = []
    try:
        a = start_server(tmp_path / "a", config, env=env)
        servers.append(a)
        secret = create_key(env, "--name", "k")
        on_a = openai.OpenAI(base_url=a.base_url, api_key=secret, max_retries=0)
        assistant = on_a.beta.assistants.create(model="fake-chat")
        thread = on_a.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
        run_id = _kill_mid_run(on_a, a, thread.id, assistant.id)
        b = start_server(tmp_path / "b", config, env=env)  # a worker replica
        c = start_server(tmp_path / "c", {**config, "run_workers": 0}, env=env)  # API only
        servers += [b, c]
        on_b, on_c = (openai.OpenAI(base_url=s.base_url, api_key=secret, max_retries=0) for s in (b, c))
        finished = on_c.beta.threads.runs.poll(run_id, thread_id=thread.id, poll_interval_ms=200)
        assert finished.status == "completed"
        on_c.beta.threads.messages.create(thread.id, role="user", content="again")
        with on_c.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            events = [event.event for event in stream]
            final = stream.get_final_messages()
        assert events[:2] == ["thread.run.created", "thread.run.queued"]
        assert "thread.message.delta" in events and events[-1] == "thread.run.completed"  # tokens came via Redis
        assert final and final[0].content[0].text.value
        messages = on_b.beta.threads.messages.list(thread.id, order="asc").data
        assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
        assert messages[-1].content[0].text.value == final[0].content[0].text.value
    finally:
        for s in servers:
            stop_server(s)


def test_runs_are_charged_to_the_key_that_made_them(tmp_path) -> None:
    server = start_server(tmp_path, {"models": FAKE, "vector_store_model": "fake-embed"})
    data = {"HOMEPORT_DATA_DIR": str(server.data_dir)}
    try:
        thrifty = create_key(data, "--name", "thrifty", "--project", "p", "--budget-tokens", "40")
        client = openai.OpenAI(base_url=server.base_url, api_key=thrifty, max_retries=0)
        assistant = client.beta.assistants.create(model="fake-chat")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "hello there"}])
        run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                       max_completion_tokens=256)  # fmt: skip
        assert run.status == "failed" and run.last_error.code == "rate_limit_exceeded"  # 256 + prompt > 40
        assert "insufficient_quota" in run.last_error.message  # OpenAI has three codes; ours is kept here

        paying = create_key(data, "--name", "paying", "--project", "p")
        client = openai.OpenAI(base_url=server.base_url, api_key=paying, max_retries=0)
        done = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
        assert done.status == "completed"
        time.sleep(1.2)  # usage is written in batches
        report = httpx.get(f"{server.base_url}/organization/usage/completions", headers={
            "Authorization": f"Bearer {paying}"}, params={"start_time": int(time.time()) - 600,
                                                          "group_by": "api_key_id"}).json()  # fmt: skip
        results = [r for b in report["data"] for r in b["results"]]
        assert len(results) == 1 and results[0]["num_model_requests"] == 1
        assert results[0]["input_tokens"] == done.usage.prompt_tokens
    finally:
        stop_server(server)


def test_a_run_waiting_for_tool_outputs_expires(tmp_path) -> None:
    """A run left in requires_action past its expires_at expires (with its step), no longer takes
    tool outputs, and frees its thread for the next run. The expiry leaves a slow machine time to
    reach requires_action (a forced call of a few tokens) before it strikes."""
    server = start_server(tmp_path, {"run_expires_s": 20, "cache_enabled": False,
                                     "load_models": [MODEL, "all-minilm-l6-v2"]})  # fmt: skip
    try:
        secret = create_key({"HOMEPORT_DATA_DIR": str(server.data_dir)}, "--name", "k")
        beta = openai.OpenAI(base_url=server.base_url, api_key=secret, max_retries=0, timeout=120).beta
        assistant = beta.assistants.create(model=MODEL, tools=[WEATHER], instructions="Use tools to answer.")
        thread = beta.threads.create(messages=[{"role": "user", "content": "What is the weather in Oslo?"}])
        forced = {"type": "function", "function": {"name": "get_weather"}}
        run = beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, tool_choice=forced,
                                                max_completion_tokens=256)  # fmt: skip
        assert run.status == "requires_action" and run.expires_at == run.created_at + 20
        deadline = time.monotonic() + 120
        while run.status == "requires_action":
            assert time.monotonic() < deadline, "the run never expired"
            time.sleep(0.5)
            run = beta.threads.runs.retrieve(run.id, thread_id=thread.id)
        assert run.status == "expired" and run.required_action is None
        validate("RunObject", _dump(run))
        listed = beta.threads.runs.steps.list(run.id, thread_id=thread.id)
        validate("ListRunStepsResponse", _dump(listed))
        steps = listed.data
        assert [(s.type, s.status) for s in steps] == [("tool_calls", "expired")] and steps[0].expired_at
        outputs = [{"tool_call_id": steps[0].step_details.tool_calls[0].id, "output": "sunny"}]
        with pytest.raises(openai.BadRequestError):
            beta.threads.runs.submit_tool_outputs(run.id, thread_id=thread.id, tool_outputs=outputs)
        after = beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id,
                                                  tool_choice="none", max_completion_tokens=256)  # fmt: skip
        assert after.status in ("completed", "incomplete")
    finally:
        stop_server(server)
