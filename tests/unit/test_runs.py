"""The run state machine on the fake engines (services/assistants/): passes, tool calls, cancel,
expiry, a pass interrupted by a dead process, truncation — fast, no HTTP."""

from __future__ import annotations

import asyncio
import time

import pytest

from homeport.backends.fake import SAY_THEN_CALL
from homeport.errors import InvalidRequest
from homeport.protocol.assistants import AssistantCreate, MessageCreate, RunCreate, ThreadCreate, ToolOutput
from homeport.services.assistants.runner import MAX_ATTEMPTS

pytestmark = pytest.mark.anyio

WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}
DEADLINE_S = 60  # generous: these wait on conditions, never on the machine's speed


async def _setup(app, tools=None, **assistant):  # type: ignore[no-untyped-def]
    objects = app.state.assistants
    made = await objects.create_assistant(None, AssistantCreate(model="fake-chat", tools=tools, **assistant))
    thread = await objects.create_thread(None, ThreadCreate(messages=[MessageCreate(role="user", content="Hi")]))
    return made, thread


async def _settled(app, run_id: str) -> dict:  # type: ignore[type-arg]
    """The run once it is no longer queued or in progress."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        run = await app.state.runs.docs.get("run", None, run_id)
        if run["status"] not in ("queued", "in_progress", "cancelling"):
            return run
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} still {run['status']}")


async def _started(app, thread, assistant, **options) -> dict:  # type: ignore[no-untyped-def, type-arg]
    runs = app.state.runs
    run = await runs.create(None, thread, RunCreate(assistant_id=assistant["id"], **options), None)
    await runs.enqueue(None, run["id"])
    return await _settled(app, run["id"])


async def test_a_run_completes_with_a_message_and_its_events_in_order(fake_app) -> None:
    assistant, thread = await _setup(fake_app, instructions="Be brief.")
    runs = fake_app.state.runs
    run = await runs.create(None, thread, RunCreate(assistant_id=assistant["id"]), None)
    events = [e async for e, _ in runs.stream(None, run, [("thread.run.created", run), ("thread.run.queued", run)])]
    assert events[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert events[-1] == "thread.run.completed" and "thread.message.delta" in events
    assert events.index("thread.message.created") < events.index("thread.message.delta")
    done = await runs.docs.get("run", None, run["id"])
    assert done["status"] == "completed" and done["usage"]["completion_tokens"] == 24 and done["started_at"]
    messages = await runs.docs.list_of("message", None, thread_id=thread["id"], order="asc")
    assert [m["role"] for m in messages] == ["user", "assistant"] and messages[1]["run_id"] == run["id"]
    steps = await runs.docs.list_of("step", None, run_id=run["id"])
    assert [(s["type"], s["status"]) for s in steps] == [("message_creation", "completed")]
    with pytest.raises(InvalidRequest):  # finished runs are not cancelled
        await runs.cancel(None, thread["id"], run["id"])


async def test_tool_calls_wait_for_outputs_then_the_run_answers(fake_app) -> None:
    assistant, thread = await _setup(fake_app, tools=[WEATHER])
    runs = fake_app.state.runs
    waiting = await _started(fake_app, thread, assistant, tool_choice="required")
    assert waiting["status"] == "requires_action"
    calls = waiting["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["weather"]
    with pytest.raises(InvalidRequest):  # a second run while this one waits
        await runs.create(None, thread, RunCreate(assistant_id=assistant["id"]), None)
    with pytest.raises(InvalidRequest) as err:
        await runs.submit_tool_outputs(None, thread["id"], waiting["id"], [ToolOutput(tool_call_id="call_x")])
    assert err.value.param == "tool_outputs.[0].tool_call_id"
    queued = await runs.submit_tool_outputs(None, thread["id"], waiting["id"],
                                            [ToolOutput(tool_call_id=calls[0]["id"], output="sunny")])  # fmt: skip
    assert queued["status"] == "queued"
    await runs.enqueue(None, waiting["id"])
    done = await _settled(fake_app, waiting["id"])
    assert done["status"] == "completed"  # the forced choice bound the first call only
    steps = await runs.docs.list_of("step", None, run_id=waiting["id"], order="asc")
    assert [(s["type"], s["status"]) for s in steps] == [("tool_calls", "completed"), ("message_creation", "completed")]
    assert steps[0]["step_details"]["tool_calls"][0]["function"]["output"] == "sunny"


async def test_what_the_model_says_before_calling_is_a_completed_message(fake_app) -> None:
    """Text, then a call (tool_choice auto): the message and its step complete before the run waits;
    a forced call's leading newline (which the grammar allows) makes no message at all."""
    objects, runs = fake_app.state.assistants, fake_app.state.runs
    assistant = await objects.create_assistant(None, AssistantCreate(model="fake-chat", tools=[WEATHER]))
    thread = await objects.create_thread(
        None, ThreadCreate(messages=[MessageCreate(role="user", content=f"Weather? {SAY_THEN_CALL}")])
    )
    waiting = await _started(fake_app, thread, assistant)
    assert waiting["status"] == "requires_action"
    steps = await runs.docs.list_of("step", None, run_id=waiting["id"], order="asc")
    said_then_called = [("message_creation", "completed"), ("tool_calls", "in_progress")]
    assert [(s["type"], s["status"]) for s in steps] == said_then_called
    said = await runs.docs.get("message", None, steps[0]["step_details"]["message_creation"]["message_id"])
    assert said["status"] == "completed" and said["content"][0]["text"]["value"] == "Let me check."
    await runs.cancel(None, thread["id"], waiting["id"])
    forced = await _started(fake_app, thread, assistant, tool_choice="required")
    steps = await runs.docs.list_of("step", None, run_id=forced["id"])
    assert forced["status"] == "requires_action" and [s["type"] for s in steps] == ["tool_calls"]


async def test_a_waiting_run_is_cancelled_or_expires(fake_app) -> None:
    assistant, thread = await _setup(fake_app, tools=[WEATHER])
    runs = fake_app.state.runs
    first = await _started(fake_app, thread, assistant, tool_choice="required")
    cancelled = await runs.cancel(None, thread["id"], first["id"])
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_at"]
    steps = await runs.docs.list_of("step", None, run_id=first["id"])
    assert [s["status"] for s in steps] == ["cancelled"]
    second = await _started(fake_app, thread, assistant, tool_choice="required")
    stored = await runs.docs.get("run", None, second["id"])
    await runs.docs.save(stored | {"expires_at": int(time.time()) - 1})  # its 10 minutes are up
    call = second["required_action"]["submit_tool_outputs"]["tool_calls"][0]["id"]
    with pytest.raises(InvalidRequest):
        await runs.submit_tool_outputs(None, thread["id"], second["id"], [ToolOutput(tool_call_id=call)])
    expired = await runs.docs.get("run", None, second["id"])
    assert expired["status"] == "expired" and expired["required_action"] is None
    assert [s["status"] for s in await runs.docs.list_of("step", None, run_id=second["id"])] == ["expired"]


async def test_a_pass_whose_process_died_runs_again_or_fails_the_run(fake_app) -> None:
    assistant, thread = await _setup(fake_app)
    runs, runner = fake_app.state.runs, fake_app.state.runs.runner
    for attempt, outcome in ((2, "completed"), (MAX_ATTEMPTS + 1, "failed")):
        run = await runs.create(None, thread, RunCreate(assistant_id=assistant["id"]), None)
        stored = await runs.docs.get("run", None, run["id"])
        await runs.docs.save(stored | {"status": "in_progress"})  # claimed by a process that then died
        left = await runs.docs.add("message", None, {"object": "thread.message", "status": "in_progress",
                                                     "run_id": run["id"], "role": "assistant", "content": []},
                                   thread_id=thread["id"], run_id=run["id"])  # fmt: skip
        await runner.run_pass(None, run["id"], attempt)
        after = await runs.docs.get("run", None, run["id"])
        assert after["status"] == outcome
        left_ids = [m["id"] for m in await runs.docs.list_of("message", None, thread_id=thread["id"])]
        assert (left["id"] in left_ids) == (outcome == "failed")  # a rerun removes what the dead pass left
        if outcome == "failed":
            assert after["last_error"]["code"] == "server_error"
            await runs.docs.delete(left["id"])


async def test_a_prompt_over_max_prompt_tokens_is_truncated_or_incomplete(fake_app) -> None:
    assistant, thread = await _setup(fake_app)
    objects = fake_app.state.assistants
    for _ in range(3):  # fake tokens are bytes: each message alone nearly fills 256 tokens
        await objects.add_message(None, thread, MessageCreate(role="user", content="word " * 40))
    kept = await _started(fake_app, thread, assistant, max_prompt_tokens=256)
    assert kept["status"] == "completed" and kept["usage"]["prompt_tokens"] <= 256  # oldest messages dropped
    strict = await _started(fake_app, thread, assistant, max_prompt_tokens=256,
                            truncation_strategy={"type": "last_messages", "last_messages": 4})  # fmt: skip
    assert strict["status"] == "incomplete" and strict["incomplete_details"] == {"reason": "max_prompt_tokens"}


async def test_a_long_thread_keeps_its_newest_messages_within_max_prompt_tokens(fake_app) -> None:
    assistant, thread = await _setup(fake_app)
    objects = fake_app.state.assistants
    for n in range(60):  # fake tokens are bytes: about 60 a message, 3,600 in all
        await objects.add_message(None, thread, MessageCreate(role="user", content=f"message {n:02} " + "x" * 40))
    run = await _started(fake_app, thread, assistant, max_prompt_tokens=1000)
    assert run["status"] == "completed"
    assert 1000 * 3 // 4 - 70 < run["usage"]["prompt_tokens"] <= 1000  # down to a stable point, not further
