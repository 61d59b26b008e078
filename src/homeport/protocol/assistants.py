"""Assistants v2 request bodies: assistants, threads, messages, runs and tool outputs.

OpenAI retired this API in 2026; Homeport keeps code written for it running. The objects
themselves are stored and served as their wire JSON (services/assistants/)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from .chat import FunctionDefinition, ResponseFormat
from .common import Metadata, Request
from .vector_stores import ChunkingStrategy

__all__ = [
    "AssistantCreate",
    "AssistantModify",
    "AssistantTool",
    "FileSearchTool",
    "FunctionTool",
    "MessageCreate",
    "RunCreate",
    "RunOptions",
    "RunResponseFormat",
    "ThreadAndRunCreate",
    "ThreadCreate",
    "ThreadModify",
    "ToolOutput",
    "ToolOutputsSubmit",
    "ToolResources",
    "TruncationStrategy",
]

Temperature = Annotated[float, Field(ge=0, le=2)]
TopP = Annotated[float, Field(ge=0, le=1)]
RunResponseFormat = Literal["auto"] | ResponseFormat


# ---- tools -----------------------------------------------------------------------------


class FunctionTool(Request):
    type: Literal["function"]
    function: FunctionDefinition


class FileSearchRanking(Request):
    ranker: Literal["auto", "default_2024_08_21"] = "auto"
    score_threshold: Annotated[float, Field(ge=0, le=1)] = 0.0


class FileSearchSettings(Request):
    max_num_results: Annotated[int, Field(ge=1, le=50)] = 20
    ranking_options: FileSearchRanking | None = None


class FileSearchTool(Request):
    type: Literal["file_search"]
    file_search: FileSearchSettings | None = None


class CodeInterpreterTool(Request):
    """Parsed so the error can name it: Homeport runs no code."""

    type: Literal["code_interpreter"]


AssistantTool = Annotated[FunctionTool | FileSearchTool | CodeInterpreterTool, Field(discriminator="type")]
Tools = Annotated[list[AssistantTool], Field(max_length=128)]


class NewVectorStore(Request):
    file_ids: list[str] | None = Field(default=None, max_length=10000)
    chunking_strategy: ChunkingStrategy | None = None
    metadata: Metadata | None = None


class FileSearchResources(Request):
    vector_store_ids: list[str] | None = Field(default=None, max_length=1)
    vector_stores: list[NewVectorStore] | None = Field(default=None, max_length=1)


class CodeInterpreterResources(Request):
    file_ids: list[str] | None = None


class ToolResources(Request):
    file_search: FileSearchResources | None = None
    code_interpreter: CodeInterpreterResources | None = None


# ---- assistants ------------------------------------------------------------------------


class AssistantModify(Request):
    model: str | None = None
    name: str | None = None
    description: str | None = None
    instructions: str | None = None
    reasoning_effort: str | None = None
    tools: Tools | None = None
    tool_resources: ToolResources | None = None
    metadata: Metadata | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    response_format: RunResponseFormat | None = None


class AssistantCreate(AssistantModify):
    model: str


# ---- threads and messages --------------------------------------------------------------


class TextPart(Request):
    type: Literal["text"]
    text: str


class OtherPart(BaseModel):
    """Image parts: parsed so the error can name them; the local models read no images."""

    type: Literal["image_file", "image_url"]


MessagePart = Annotated[TextPart | OtherPart, Field(discriminator="type")]


class AttachmentTool(BaseModel):
    type: Literal["file_search", "code_interpreter"]


class Attachment(Request):
    file_id: str
    tools: list[AttachmentTool]


class MessageCreate(Request):
    role: Literal["user", "assistant"]
    content: str | Annotated[list[MessagePart], Field(min_length=1)]
    attachments: list[Attachment] | None = None
    metadata: Metadata | None = None


class ThreadModify(Request):
    tool_resources: ToolResources | None = None
    metadata: Metadata | None = None


class ThreadCreate(ThreadModify):
    messages: list[MessageCreate] | None = None


# ---- runs ------------------------------------------------------------------------------


class TruncationStrategy(Request):
    type: Literal["auto", "last_messages"]
    last_messages: Annotated[int, Field(ge=1)] | None = None


class NamedFunction(Request):
    name: str


class NamedTool(Request):
    type: Literal["function", "file_search", "code_interpreter"]
    function: NamedFunction | None = None


class RunOptions(Request):
    """What a run request and a create-thread-and-run request share."""

    assistant_id: str
    model: str | None = None
    instructions: str | None = None
    tools: Tools | None = None
    metadata: Metadata | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    stream: bool | None = None
    max_prompt_tokens: Annotated[int, Field(ge=256)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=256)] | None = None
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedTool | None = None
    parallel_tool_calls: bool | None = None
    response_format: RunResponseFormat | None = None


class RunCreate(RunOptions):
    reasoning_effort: str | None = None
    additional_instructions: str | None = None
    additional_messages: list[MessageCreate] | None = None


class ThreadAndRunCreate(RunOptions):
    thread: ThreadCreate | None = None
    tool_resources: ToolResources | None = None


class ToolOutput(Request):
    tool_call_id: str
    output: str | None = None


class ToolOutputsSubmit(Request):
    tool_outputs: Annotated[list[ToolOutput], Field(min_length=1)]
    stream: bool | None = None
