"""Tools and response formats → what the model is told (prompt) and allowed (grammar).

| tool_choice          | grammar                                              |
|----------------------|------------------------------------------------------|
| none / no tools      | the response_format's, if any                        |
| auto                 | lazy: free text, constrained once `<tool_call>` opens |
|                      | (with a JSON response_format: calls or that JSON)    |
| required             | one or more calls to any tool                        |
| {"function": {name}} | exactly one call to that tool                        |
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..backends import grammar as gbnf
from ..errors import InvalidRequest, UnsupportedParameter
from ..protocol.chat import (
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
    grammar: str | None = None
    trigger: str | None = None
    """With a grammar: it applies only from the text this pattern captures (lazy)."""
    calls_possible: bool = False


def plan_structure(request: ChatCompletionRequest) -> Structure:
    tools = _tools(request)
    answer_schema, answer_grammar = _response_format(request)
    choice = _tool_choice(request, tools)
    if not tools or choice == "none":
        return Structure(grammar=answer_grammar)
    signatures = [(name, tool.function.parameters or {}) for name, tool in tools.items()]
    # Several calls in one turn only when asked for: like llama.cpp's server, and unlike
    # api.openai.com whose default is true. Small models offered "another call?" after each
    # call tend to repeat the same call until max_tokens.
    parallel = request.parallel_tool_calls is True
    prompt = _tools_prompt(list(tools.values()), parallel)
    if choice == "auto":
        if answer_schema is None:
            grammar = gbnf.tool_calls_grammar(signatures, parallel=parallel)
            return Structure(tools, prompt, grammar, gbnf.TOOL_CALL_TRIGGER, calls_possible=True)
        grammar = gbnf.tool_calls_grammar(signatures, parallel=parallel, answer_schema=answer_schema)
        return Structure(tools, prompt, grammar, calls_possible=True)
    if choice == "required":
        return Structure(tools, prompt, gbnf.tool_calls_grammar(signatures, parallel=parallel), calls_possible=True)
    assert isinstance(choice, _Named)
    named = [(n, s) for n, s in signatures if n == choice.name]
    return Structure(tools, prompt, gbnf.tool_calls_grammar(named, parallel=False), calls_possible=True)


def _tools(request: ChatCompletionRequest) -> dict[str, FunctionTool]:
    tools: dict[str, FunctionTool] = {}
    for i, tool in enumerate(request.tools or []):
        if not isinstance(tool, FunctionTool):
            raise UnsupportedParameter(f"tools.[{i}].type", "Only function tools are available.")
        name = tool.function.name
        if name in tools:
            raise InvalidRequest(f"Duplicate function name '{name}' in tools.", param=f"tools.[{i}].function.name")
        if tool.function.parameters is not None:
            gbnf.check_schema(tool.function.parameters, param=f"tools.[{i}].function.parameters")
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


def _response_format(request: ChatCompletionRequest) -> tuple[dict | None, str | None]:
    """(the answer's JSON schema, its grammar) for the JSON response formats, else (None, None)."""
    fmt = request.response_format
    if isinstance(fmt, ResponseFormatJsonObject):
        return {"type": "object"}, gbnf.JSON_OBJECT
    if isinstance(fmt, ResponseFormatJsonSchema):
        schema = fmt.json_schema.schema_
        if schema is None:
            return {"type": "object"}, gbnf.JSON_OBJECT
        gbnf.check_schema(schema, param="response_format.json_schema.schema")
        return schema, gbnf.schema_grammar(schema)
    return None, None


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
