"""`POST /v1/chat/completions` wire types (CreateChatCompletionRequest/Response/StreamResponse)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from .common import Request, Seed, Stop, StreamOptions, Usage, Wire, omitted_if_none

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatChoice",
    "ChatChunkChoice",
    "ResponseMessage",
    "Delta",
    "ChoiceLogprobs",
    "TokenLogprob",
    "TopLogprob",
    "ContentPart",
    "FunctionTool",
    "NamedToolChoice",
    "ResponseFormat",
    "ResponseFormatJsonObject",
    "ResponseFormatJsonSchema",
    "ToolCall",
    "ToolCallDelta",
    "FunctionCall",
]


# ---- request ---------------------------------------------------------------------------


class TextPart(Request):
    type: Literal["text"]
    text: str


class OtherPart(BaseModel):
    """Image, audio, file and refusal parts. Local models answer them with a 400 naming the part;
    an upstream deployment receives them as sent (its fields kept whole)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["image_url", "input_audio", "file", "refusal"]


ContentPart = Annotated[TextPart | OtherPart, Field(discriminator="type")]
Content = str | Annotated[list[ContentPart], Field(min_length=1)]


class FunctionCall(BaseModel):
    name: str
    arguments: str


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(Request):
    role: Literal["system"]
    content: Content
    name: str | None = None


class DeveloperMessage(Request):
    role: Literal["developer"]
    content: Content
    name: str | None = None


class UserMessage(Request):
    role: Literal["user"]
    content: Content
    name: str | None = None


class AssistantMessage(Request):
    role: Literal["assistant"]
    content: Content | None = None
    refusal: str | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    function_call: FunctionCall | None = None
    audio: dict[str, JsonValue] | None = None
    # Not in the request schema, but present when code appends a response message to the
    # history, as OpenAI's own examples do: accepted and ignored, like api.openai.com.
    annotations: list[dict[str, JsonValue]] | None = None


class ToolMessage(Request):
    role: Literal["tool"]
    content: Content
    tool_call_id: str


class FunctionMessage(Request):
    role: Literal["function"]
    content: str | None
    name: str


ChatMessage = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage,
    Field(discriminator="role"),
]


class FunctionDefinition(Request):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, JsonValue] | None = None
    strict: bool | None = None


class FunctionTool(Request):
    type: Literal["function"]
    function: FunctionDefinition


class CustomTool(BaseModel):
    """Parsed so the error can name it; free-form custom tools are not served."""

    type: Literal["custom"]


Tool = Annotated[FunctionTool | CustomTool, Field(discriminator="type")]


class NamedFunction(Request):
    name: str


class NamedToolChoice(Request):
    type: Literal["function"]
    function: NamedFunction


class OtherToolChoice(BaseModel):
    type: Literal["allowed_tools", "custom"]


ToolChoice = (
    Literal["none", "auto", "required"] | Annotated[NamedToolChoice | OtherToolChoice, Field(discriminator="type")]
)


class JsonSchemaFormat(Request):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    schema_: Annotated[dict[str, JsonValue] | None, Field(alias="schema")] = None
    strict: bool | None = None


class ResponseFormatText(Request):
    type: Literal["text"]


class ResponseFormatJsonObject(Request):
    type: Literal["json_object"]


class ResponseFormatJsonSchema(Request):
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJsonObject | ResponseFormatJsonSchema, Field(discriminator="type")
]


class ChatCompletionRequest(Request):
    model: str
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    stop: Stop = None
    seed: Seed | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    functions: list[dict[str, JsonValue]] | None = None
    function_call: str | dict[str, JsonValue] | None = None
    # In the spec, not served by local models: any non-null value is a 400 naming it.
    modalities: list[str] | None = None
    audio: dict[str, JsonValue] | None = None
    prediction: dict[str, JsonValue] | None = None
    web_search_options: dict[str, JsonValue] | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    moderation: dict[str, JsonValue] | None = None
    prompt_cache_retention: str | None = None
    prompt_cache_options: dict[str, JsonValue] | None = None


# ---- response --------------------------------------------------------------------------


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob] | None
    refusal: list[TokenLogprob] | None = None


class ResponseMessage(Wire):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = omitted_if_none()
    annotations: list[dict[str, JsonValue]] = []


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class ChatChoice(BaseModel):
    index: int
    message: ResponseMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str
    service_tier: str | None = "default"
    metadata: dict[str, str] | None = None


class ToolCallDelta(Wire):
    index: int
    id: str | None = omitted_if_none()
    type: Literal["function"] | None = omitted_if_none()
    function: dict[str, str] | None = omitted_if_none()


class Delta(Wire):
    role: Literal["assistant"] | None = omitted_if_none()
    content: str | None = omitted_if_none()
    refusal: str | None = omitted_if_none()
    tool_calls: list[ToolCallDelta] | None = omitted_if_none()


class ChatChunkChoice(BaseModel):
    index: int
    delta: Delta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(Wire):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = omitted_if_none()
    system_fingerprint: str
    service_tier: str | None = "default"
