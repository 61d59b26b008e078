"""Tools and response formats → what the model is told (prompt) and allowed (constraint).

| tool_choice          | constraint                                           |
|----------------------|------------------------------------------------------|
| none / no tools      | the response_format's JSON schema, if any            |
| auto                 | lazy: free text, constrained once `<tool_call>` opens |
|                      | (with a JSON response_format: calls or that JSON)    |
| required             | one or more calls to any tool                        |
| {"function": {name}} | exactly one call to that tool                        |

The constraint crosses the engine seam as JSON Schema; the engine compiles it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ...backends.constraints import JSON_OBJECT_SCHEMA, OutputConstraint, ToolSignature, check_schema
from ...errors import InvalidRequest, UnsupportedParameter
from ...protocol.chat import (
    ChatCompletionRequest,
    FunctionTool,
    NamedToolChoice,
    ResponseFormatJsonObject,
    ResponseFormatJsonSchema,
)

__all__ = ["Structure", "plan_structure"]


@dataclass
class Structure:
    tools: dict[str, FunctionTool] = field(default_factory=dict)
    prompt: str | None = None
    """Instructions added to the system message (tool signatures and the call format)."""
    constraint: OutputConstraint | None = None
    calls_possible: bool = False


def plan_structure(request: ChatCompletionRequest) -> Structure:
    tools = _tools(request)
    answer = _response_format(request)
    choice = _tool_choice(request, tools)
    if not tools or choice == "none":
        return Structure(constraint=None if answer is None else OutputConstraint(answer=answer))
    signatures = tuple(ToolSignature(name, tool.function.parameters or {}) for name, tool in tools.items())
    # Several calls in one turn only when asked for: like llama.cpp's server, and unlike
    # api.openai.com whose default is true. Small models offered "another call?" after each
    # call tend to repeat the same call until max_tokens.
    parallel = request.parallel_tool_calls is True
    prompt = _tools_prompt(list(tools.values()), parallel)
    if choice == "auto":
        return Structure(tools, prompt, OutputConstraint(answer, signatures, "auto", parallel), calls_possible=True)
    if choice == "required":
        return Structure(tools, prompt, OutputConstraint(None, signatures, "required", parallel), calls_possible=True)
    assert isinstance(choice, _Named)
    named = tuple(s for s in signatures if s.name == choice.name)
    return Structure(tools, prompt, OutputConstraint(tools=named), calls_possible=True)


def _tools(request: ChatCompletionRequest) -> dict[str, FunctionTool]:
    tools: dict[str, FunctionTool] = {}
    for i, tool in enumerate(request.tools or []):
        if not isinstance(tool, FunctionTool):
            raise UnsupportedParameter(f"tools.[{i}].type", "Only function tools are available.")
        name = tool.function.name
        if name in tools:
            raise InvalidRequest(f"Duplicate function name '{name}' in tools.", param=f"tools.[{i}].function.name")
        if tool.function.parameters is not None:
            check_schema(tool.function.parameters, param=f"tools.[{i}].function.parameters")
        tools[name] = tool
    return tools


@dataclass(frozen=True)
class _Named:
    name: str


def _tool_choice(request: ChatCompletionRequest, tools: dict[str, FunctionTool]) -> str | _Named:
    choice = request.tool_choice
    if choice is None:
        return "auto"
    if not tools:
        raise InvalidRequest(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            param="tool_choice",
        )
    if isinstance(choice, str):
        return choice
    if not isinstance(choice, NamedToolChoice):
        raise UnsupportedParameter("tool_choice", "Use 'none', 'auto', 'required' or a named function.")
    if choice.function.name not in tools:
        raise InvalidRequest(
            f"Invalid value for 'tool_choice': no function named '{choice.function.name}' is in 'tools'.",
            param="tool_choice",
        )
    return _Named(choice.function.name)


def _response_format(request: ChatCompletionRequest) -> dict | None:
    """The answer's JSON schema for the JSON response formats, else None."""
    fmt = request.response_format
    if isinstance(fmt, ResponseFormatJsonObject):
        return JSON_OBJECT_SCHEMA
    if isinstance(fmt, ResponseFormatJsonSchema):
        schema = fmt.json_schema.schema_
        if schema is None:
            return JSON_OBJECT_SCHEMA
        check_schema(schema, param="response_format.json_schema.schema")
        return schema
    return None


def _tools_prompt(tools: list[FunctionTool], parallel: bool) -> str:
    signatures = "\n".join(json.dumps(t.model_dump(exclude_none=True)) for t in tools)
    many = "one or more function calls" if parallel else "one function call"
    return (
        "You can call functions to help answer. Their signatures are inside <tools></tools>:\n"
        f"<tools>\n{signatures}\n</tools>\n"
        f"To call a function, answer with {many}, each a JSON object inside <tool_call></tool_call> tags:\n"
        '<tool_call>\n{"name": "<function name>", "arguments": {<arguments as JSON>}}\n</tool_call>\n'
        "Function results come back inside <tool_response></tool_response>."
    )
