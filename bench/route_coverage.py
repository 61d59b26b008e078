"""How much of OpenAI's published API Homeport routes, by family, from the app's own route table.

    .venv/bin/python bench/route_coverage.py [--json bench/results/route_coverage.json]

Every operation (path + method) of ../shared/openai-openapi.yaml is matched against the routes of
`create_app` (path parameters compared by position, not name). To compare with an earlier
revision, run the script with PYTHONPATH pointing at that revision's src/.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO.parent / "shared" / "openai-openapi.yaml"
METHODS = {"get", "post", "put", "patch", "delete"}


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _concrete(path: str, operation: dict) -> list[str]:  # type: ignore[type-arg]
    """The path, with a path parameter that takes a fixed set of values (an enum) spelled out."""
    paths = [path.removeprefix("/v1")]
    for param in operation.get("parameters", []):
        values = param.get("schema", {}).get("enum")
        if param.get("in") == "path" and values:
            paths = [p.replace("{" + param["name"] + "}", v) for p in paths for v in values]
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "route_coverage.json")
    args = parser.parse_args()
    from homeport.api.app import create_app
    from homeport.settings import Settings

    app = create_app(Settings(data_dir=Path(tempfile.mkdtemp())))
    paths = app.openapi()["paths"]  # every route the app serves, included routers too
    routed = {
        (_shape(p), m) for path, ops in paths.items() for m in METHODS & set(ops) for p in _concrete(path, ops[m])
    }
    spec = yaml.safe_load(SPEC.read_text())
    total: Counter[str] = Counter()
    served: Counter[str] = Counter()
    for path, ops in spec["paths"].items():
        if "?" in path:  # `?beta=true` duplicates of the same operations
            continue
        family = path.strip("/").split("/")[0]
        family = "/".join(path.strip("/").split("/")[:2]) if family in ("organization", "audio", "chat") else family
        for method in METHODS & set(ops):
            total[family] += 1
            served[family] += (_shape(path), method) in routed
    rows = sorted(total, key=lambda f: (-served[f], f))
    print(f"{'family':36} {'routed':>6} {'of':>4} {'share':>6}")
    for f in rows:
        print(f"{f:36} {served[f]:>6} {total[f]:>4} {served[f] / total[f]:>6.0%}")
    s, t = sum(served.values()), sum(total.values())
    print(f"{'all':36} {s:>6} {t:>4} {s / t:>6.0%}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"families": {f: [served[f], total[f]] for f in rows}, "all": [s, t]}, indent=2))


if __name__ == "__main__":
    main()
