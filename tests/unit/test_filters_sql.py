"""OpenAI's attribute filters compiled to one PostgreSQL predicate (services/retrieval/filters.py)
answer as the Python reference (`search.matches`) does, over generated attributes and filters:
missing keys, mixed types, booleans beside numbers, substrings, code-point order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from sqlalchemy import Engine, create_engine, text

from homeport.protocol.vector_stores import Filter
from homeport.services.retrieval.filters import to_sql
from homeport.services.retrieval.search import matches

KEYS = ["a", "b", "c"]
SCALARS = st.one_of(st.booleans(), st.integers(-3, 3), st.floats(-3, 3, allow_nan=False, width=32),
                    st.sampled_from(["", "a", "ab", "b", "B", "é", "😀", "10", "1", "1.0"]))  # fmt: skip
COMPARISON = st.fixed_dictionaries({
    "type": st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]),
    "key": st.sampled_from([*KEYS, "missing"]),
    "value": st.one_of(SCALARS, st.lists(SCALARS, max_size=3)),
})  # fmt: skip
FILTERS = st.recursive(COMPARISON, lambda inner: st.fixed_dictionaries(
    {"type": st.sampled_from(["and", "or"]), "filters": st.lists(inner, min_size=1, max_size=3)}), max_leaves=6)
ATTRIBUTES = st.dictionaries(st.sampled_from(KEYS), SCALARS, max_size=3)
PARSE = TypeAdapter(Filter)


@pytest.fixture(scope="module")
def pg() -> Iterator[Engine]:
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test", connect_args={"connect_timeout": 3})
    try:
        engine.connect().close()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432: {exc}")
    yield engine
    engine.dispose()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=FILTERS, attributes=st.lists(ATTRIBUTES, min_size=1, max_size=4))
def test_the_sql_predicate_answers_as_python_does(pg: Engine, raw: dict[str, Any], attributes: list[dict]) -> None:
    f = PARSE.validate_python(raw)
    clause, params = to_sql(f)
    rows = ", ".join(f"({i}, :doc{i})" for i in range(len(attributes)))
    docs = {f"doc{i}": json.dumps(a) for i, a in enumerate(attributes)}
    with pg.connect() as conn:
        got = [bool(r[0]) for r in conn.execute(text(
            f"SELECT {clause} FROM (VALUES {rows}) AS t(i, attributes) ORDER BY i"), params | docs)]  # fmt: skip
    assert got == [matches(f, a) for a in attributes], (raw, attributes, clause)
