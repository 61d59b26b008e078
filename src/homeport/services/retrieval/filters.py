"""OpenAI's attribute filters (comparison and compound) as one PostgreSQL predicate over
`vector_store_files.attributes`, so the database picks the matching files instead of Homeport
reading every file's attributes. It answers as `search.matches` does in Python, which stays the
reference (and the SQLite path): a missing key matches only `ne` and `nin`; a string compared
with a number matches nothing but `ne`/`nin`; booleans count as 1 and 0 beside numbers (Python's
`True == 1`); strings order by code point (`COLLATE "C"`)."""

from __future__ import annotations

from typing import Any

from ...protocol.vector_stores import ComparisonFilter, Filter

__all__ = ["to_sql"]

_ORDER = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def to_sql(f: Filter, column: str = "attributes") -> tuple[str, dict[str, Any]]:
    """(a boolean SQL expression over `column` — JSON text — never NULL, its bind parameters)."""
    params: dict[str, Any] = {}
    return _expr(f, f"CAST({column} AS jsonb)", params), params


def _bind(params: dict[str, Any], value: Any) -> str:
    name = f"f{len(params)}"
    params[name] = value
    return f":{name}"


def _expr(f: Filter, doc: str, params: dict[str, Any]) -> str:
    if not isinstance(f, ComparisonFilter):
        joined = f" {'AND' if f.type == 'and' else 'OR'} ".join(_expr(sub, doc, params) for sub in f.filters)
        return f"({joined})" if f.filters else ("TRUE" if f.type == "and" else "FALSE")
    value = f"({doc} -> {_bind(params, f.key)})"
    number = (f"(CASE jsonb_typeof({value}) WHEN 'number' THEN CAST({value} #>> '{{}}' AS numeric) "
              f"WHEN 'boolean' THEN CASE WHEN {value} = 'true'::jsonb THEN 1 ELSE 0 END END)")  # fmt: skip
    string = f"(CASE WHEN jsonb_typeof({value}) = 'string' THEN {value} #>> '{{}}' END)"

    def equal(want: Any) -> str:  # NULL where the types cannot be compared
        if isinstance(want, str):
            return f"({string} = {_bind(params, want)})"
        if isinstance(want, list):
            return "FALSE"  # an attribute is never a list
        return f"({number} = CAST({_bind(params, str(_numeric(want)))} AS numeric))"

    missing = f"({value} IS NULL)"
    if f.type in ("eq", "ne"):
        same = f"COALESCE({equal(f.value)}, FALSE)"
        return same if f.type == "eq" else f"({missing} OR NOT {same})"
    if f.type in ("in", "nin"):
        if isinstance(f.value, list):
            found = f"COALESCE({' OR '.join(equal(w) for w in f.value) or 'FALSE'}, FALSE)"
            return found if f.type == "in" else f"({missing} OR NOT {found})"
        if isinstance(f.value, str):  # Python's `in` on a string: a substring, of a string attribute only
            inside = f"(strpos({_bind(params, f.value)}, {string}) > 0)"
            return f"COALESCE({inside}, FALSE)" if f.type == "in" else f"({missing} OR COALESCE(NOT {inside}, FALSE))"
        return "FALSE" if f.type == "in" else missing  # `x in 5` is a TypeError in Python: no match
    op = _ORDER[f.type]
    if isinstance(f.value, str):
        return f"COALESCE({string} COLLATE \"C\" {op} {_bind(params, f.value)}, FALSE)"
    if isinstance(f.value, list):
        return "FALSE"
    return f"COALESCE({number} {op} CAST({_bind(params, str(_numeric(f.value)))} AS numeric), FALSE)"


def _numeric(value: Any) -> int | float:
    return int(value) if isinstance(value, bool) else value
