"""`/v1/responses` and `/v1/conversations` wire types: requests, input items, tools.

Input items come back from clients as they were sent out (an output message, a function call), so
the item models ignore fields they do not need rather than refusing them; the request body itself
refuses unknown fields, as api.openai.com does. Response objects and stream events are built as
JSON in services/responses/ and validated against the spec in the tests.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, JsonValue, Tag

from .chat import JsonSchemaFormat
from .common import Metadata, Request
from .vector_stores import Filter

__all__ = [
    "CompactionItem",
    "ConversationCreate",
    "ConversationItemsCreate",
    "ConversationUpdate",
    "FileSearchTool",
    "FunctionCallItem",
    "FunctionCallOutputItem",
    "FunctionTool",
    "InputItem",
    "InputTokensCount",
    "ItemReference",
    "MessageItem",
    "OtherTool",
    "ResponseCompact",
    "ResponseCreate",
    "ResponseTool",
    "TextConfig",
]


class _Item(BaseModel):
    """An input item: fields a client echoes back from an output item are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")


class InputText(_Item):
    type: Literal["input_text", "output_text", "text"]
    text: str


class OtherContent(_Item):
    """Images, files, audio, refusals: parsed so the error can name them."""

    type: Literal["input_image", "input_file", "input_audio", "refusal"]


ContentPart = Annotated[InputText | OtherContent, Field(discriminator="type")]


class MessageItem(_Item):
    type: Literal["message"] = "message"
    id: str | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]


class FunctionCallItem(_Item):
    type: Literal["function_call"]
    id: str | None = None
    call_id: str
    name: str
    arguments: str


class FunctionCallOutputItem(_Item):
    type: Literal["function_call_output"]
    id: str | None = None
    call_id: str
    output: str | list[InputText]


class ItemReference(_Item):
    type: Literal["item_reference"] = "item_reference"
    id: str


class FileSearchCallItem(_Item):
    """A file search a previous response made: context only, it adds nothing to the prompt."""

    type: Literal["file_search_call"]
    id: str


class CompactionItem(_Item):
    """What `POST /v1/responses/compact` returned in place of earlier turns (Homeport's summary)."""

    type: Literal["compaction"]
    id: str | None = None
    encrypted_content: str


class OtherItem(_Item):
    """Items of tools Homeport does not have: parsed so the error can name them."""

    type: str


def _item_kind(value: Any) -> str:
    """The item's type; without one, a message (EasyInputMessage) or, with only an id, a reference."""
    get = value.get if isinstance(value, dict) else lambda name: getattr(value, name, None)
    kind = get("type")
    if kind is None:
        return "message" if get("role") is not None else "item_reference"
    known = {"message", "function_call", "function_call_output", "item_reference", "file_search_call", "compaction"}
    return kind if kind in known else "other"


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ItemReference, Tag("item_reference")]
    | Annotated[FileSearchCallItem, Tag("file_search_call")]
    | Annotated[CompactionItem, Tag("compaction")]
    | Annotated[OtherItem, Tag("other")],
    Discriminator(_item_kind),
]


# ---- tools -----------------------------------------------------------------------------


class FunctionTool(Request):
    type: Literal["function"]
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, JsonValue] | None = None
    strict: bool | None = None


class FileSearchRanking(Request):
    ranker: Literal["auto", "default-2024-11-15", "none"] = "auto"
    score_threshold: Annotated[float, Field(ge=0, le=1)] = 0.0


class FileSearchTool(Request):
    type: Literal["file_search"]
    vector_store_ids: Annotated[list[str], Field(min_length=1, max_length=2)]
    max_num_results: Annotated[int, Field(ge=1, le=50)] = 10
    ranking_options: FileSearchRanking | None = None
    filters: Filter | None = None


class OtherTool(BaseModel):
    """Built-in tools Homeport does not have (web search, code interpreter, …): refused by name."""

    type: str


def _tool_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ("function", "file_search") else "other"


ResponseTool = Annotated[
    Annotated[FunctionTool, Tag("function")]
    | Annotated[FileSearchTool, Tag("file_search")]
    | Annotated[OtherTool, Tag("other")],
    Discriminator(_tool_kind),
]


class NamedFunction(Request):
    type: Literal["function"]
    name: str


class AllowedTools(Request):
    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"]
    tools: list[dict[str, JsonValue]]


class HostedToolChoice(Request):
    type: Literal["file_search"]


ToolChoice = (
    Literal["none", "auto", "required"]
    | Annotated[NamedFunction | AllowedTools | HostedToolChoice, Field(discriminator="type")]
)


# ---- text format -----------------------------------------------------------------------


class FormatText(Request):
    type: Literal["text"]


class FormatJsonObject(Request):
    type: Literal["json_object"]


class FormatJsonSchema(JsonSchemaFormat):
    type: Literal["json_schema"]


class TextConfig(Request):
    format: Annotated[FormatText | FormatJsonObject | FormatJsonSchema, Field(discriminator="type")] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ConversationRef(Request):
    id: str


class StreamOptions(Request):
    include_obfuscation: bool | None = None


Include = Literal["file_search_call.results", "message.output_text.logprobs"]


class ResponseCreate(Request):
    model: str
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    max_output_tokens: Annotated[int, Field(ge=16)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    metadata: Metadata | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    tools: list[ResponseTool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tool_calls: Annotated[int, Field(ge=1)] | None = None
    text: TextConfig | None = None
    include: list[Include] | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    conversation: str | ConversationRef | None = None
    truncation: Literal["auto", "disabled"] | None = None
    background: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    service_tier: str | None = None
    # Parsed so the error can name them: reasoning effort and prompt templates are not served.
    reasoning: dict[str, JsonValue] | None = None
    prompt: dict[str, JsonValue] | None = None

    @property
    def conversation_id(self) -> str | None:
        return self.conversation.id if isinstance(self.conversation, ConversationRef) else self.conversation


# ---- conversations ---------------------------------------------------------------------


class ConversationCreate(Request):
    metadata: Metadata | None = None
    items: Annotated[list[InputItem], Field(max_length=20)] | None = None


class ConversationUpdate(Request):
    metadata: Metadata


class ConversationItemsCreate(Request):
    items: Annotated[list[InputItem], Field(min_length=1, max_length=20)]


class InputTokensCount(Request):
    """`POST /v1/responses/input_tokens`: what `usage.input_tokens` would be for this request."""

    model: str | None = None
    input: str | list[InputItem] | None = None
    previous_response_id: str | None = None
    tools: list[ResponseTool] | None = None
    text: TextConfig | None = None
    reasoning: dict[str, JsonValue] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    instructions: str | None = None
    conversation: str | ConversationRef | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None


class ResponseCompact(Request):
    """`POST /v1/responses/compact`: the context (previous response and/or input) made short."""

    model: str
    input: str | list[InputItem] | None = None
    previous_response_id: str | None = None
    instructions: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    service_tier: str | None = None
