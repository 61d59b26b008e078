"""Logging: plain text for a terminal, or one JSON object per line for log pipelines.

Access records carry the request id, route, status, latency, model and key id; never prompt
or output text (privacy by default).
"""

from __future__ import annotations

import json
import logging
import time

__all__ = ["configure_logging", "JsonFormatter", "ACCESS"]

ACCESS = logging.getLogger("homeport.access")
_FIELDS = ("request_id", "method", "path", "status", "latency_ms", "model", "key_id", "project_id")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out |= {f: getattr(record, f) for f in _FIELDS if getattr(record, f, None) is not None}
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure_logging(fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s:     %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)
