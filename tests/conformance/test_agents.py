"""Agent frameworks built on the Responses API, unchanged, against Homeport: the OpenAI Agents SDK
(an Agent with a function tool, run by Runner.run through OpenAIResponsesModel) and LangChain's
ChatOpenAI with use_responses_api=True."""

from __future__ import annotations

import pytest

from tests.conftest import API_KEY

MODEL = "smollm2-135m-instruct"


@pytest.mark.anyio
async def test_an_agent_calls_its_tool_and_answers(server) -> None:
    from agents import Agent, ModelSettings, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    asked: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return f"It is sunny in {city}."

    client = AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0, timeout=120)
    agent = Agent(
        name="helper", instructions="Use the tool to answer.", tools=[get_weather],
        model=OpenAIResponsesModel(model=MODEL, openai_client=client),
        model_settings=ModelSettings(tool_choice="required", max_tokens=80),
    )  # fmt: skip
    result = await Runner.run(agent, "What is the weather in Paris?", max_turns=4)
    kinds = [type(item).__name__ for item in result.new_items]
    assert kinds[:2] == ["ToolCallItem", "ToolCallOutputItem"] and kinds[-1] == "MessageOutputItem"
    assert len(asked) == 1 and isinstance(result.final_output, str)  # the tool ran, then the model answered
    await client.close()


def test_langchain_over_the_responses_api(server) -> None:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=server.base_url, api_key=API_KEY, model=MODEL, use_responses_api=True,
                     max_tokens=60, max_retries=0)  # fmt: skip
    reply = llm.invoke("Name a colour.")
    assert reply.content and reply.response_metadata["id"].startswith("resp_")
    assert reply.usage_metadata["total_tokens"] > 0

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    called = llm.bind_tools([get_weather], tool_choice="get_weather").invoke("Weather in Rome?")
    assert [c["name"] for c in called.tool_calls] == ["get_weather"]
    assert isinstance(called.tool_calls[0]["args"]["city"], str)
    streamed = list(llm.stream("Say hi."))
    assert len(streamed) > 2
