"""Anthropic's Messages API wire types (`POST /v1/messages`, `/v1/messages/count_tokens`): the
request, in Anthropic's own field names. Answers are built as plain JSON in Anthropic's shapes
(services/messages/translate.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .common import Request

__all__ = ["MessagesRequest", "CountTokensRequest", "AnthropicMessage", "AnthropicTool", "ToolChoice"]


class _Block(BaseModel):
    """A content block: text, image, tool_use, tool_result (others are refused by name)."""

    model_config = ConfigDict(extra="allow")

    type: str


class AnthropicMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str | list[_Block]


class AnthropicTool(BaseModel):
    model_config = ConfigDict(extra="allow")  # cache_control and friends: annotations

    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any]
    type: str | None = None
    """Custom tools only (None or `custom`); server tools (web search, …) are refused."""


class ToolChoice(BaseModel):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class CountTokensRequest(Request):
    model: str
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[_Block] | None = None
    tools: list[AnthropicTool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: dict[str, Any] | None = None


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1)
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    stop_sequences: list[str] | None = None
    stream: bool = False
    metadata: dict[str, Any] | None = None
    # Hints with nothing to do here (prompt prefixes are cached by themselves; there is one region,
    # one tier, one speed): accepted and ignored. Other fields are a 400 naming them.
    service_tier: str | None = None
    cache_control: dict[str, Any] | None = None
    inference_geo: str | None = None
    speed: str | None = None
    workspace_id: str | None = None
    user_profile_id: str | None = None
