"""Validation against OpenAI's published spec (../shared/openai-openapi.yaml beside the repo).

The spec declares OpenAPI 3.1 but still marks some fields `nullable: true` (3.0 style);
those are rewritten to `anyOf: [schema, null]` so correct null fields validate.
"""

from __future__ import annotations

import json
import pickle
from functools import cache
from pathlib import Path
from typing import Any

import pytest

SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "openai-openapi.yaml"
_ROOT = "urn:openai-openapi"


def _nullable_to_anyof(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable_to_anyof(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_to_anyof(v) for k, v in node.items()}
    if out.pop("nullable", False) is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def _registry_and_schemas():  # -> (Registry, dict)
    import yaml
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    cache_file = Path("/tmp") / f"homeport-spec-{SPEC_PATH.stat().st_mtime_ns}.pickle"
    if cache_file.exists():
        spec = pickle.loads(cache_file.read_bytes())
    else:
        spec = _nullable_to_anyof(
            yaml.load(SPEC_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        )
        cache_file.write_bytes(pickle.dumps(spec))
    registry = Registry().with_resource(_ROOT, Resource.from_contents(spec, default_specification=DRAFT202012))
    return registry, spec["components"]["schemas"]


def validate(schema_name: str, instance: Any) -> None:
    """Assert `instance` matches components.schemas[schema_name]; skip visibly without the spec."""
    if not SPEC_PATH.exists():
        pytest.skip(f"spec validation skipped: {SPEC_PATH} is absent")
    from jsonschema import Draft202012Validator

    registry, schemas = _registry_and_schemas()
    assert schema_name in schemas, schema_name
    validator = Draft202012Validator({"$ref": f"{_ROOT}#/components/schemas/{schema_name}"}, registry=registry)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"{schema_name}: " + "; ".join(f"{list(e.path)}: {e.message[:300]}" for e in errors[:5])


def wire(obj: Any) -> Any:
    """The JSON an SDK object was parsed from (its set fields, as sent)."""
    return obj.model_dump(mode="json", exclude_unset=True, by_alias=True)


def spec_document() -> dict[str, Any]:
    """The whole spec, `nullable` rewritten as above (for tools that read it, e.g. the fuzzer)."""
    if not SPEC_PATH.exists():
        pytest.skip(f"spec absent: {SPEC_PATH}")
    registry, _ = _registry_and_schemas()
    return registry.contents(_ROOT)


def validate_against(schema: dict[str, Any], instance: Any, where: str) -> None:
    """Assert `instance` matches an inline schema of the spec (its `#/components/...` refs resolved)."""
    from jsonschema import Draft202012Validator

    registry, _ = _registry_and_schemas()
    anchored = json.loads(json.dumps(schema).replace('"#/components/', f'"{_ROOT}#/components/'))
    errors = sorted(Draft202012Validator(anchored, registry=registry).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, f"{where}: " + "; ".join(f"{list(e.path)}: {e.message[:300]}" for e in errors[:5])
