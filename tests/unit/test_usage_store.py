"""Usage records and their hourly rollups: the two agree, pruning keeps the rollups, costs add up;
and migration 0008 carries the old per-key/per-project limits into the rate-limit table."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from homeport.services.platform.limit_rows import LimitStore
from homeport.services.platform.limits import Limit
from homeport.services.platform.usage import UsageEvent, UsageRecorder, costs_report, usage_report
from homeport.storage import db as db_module
from homeport.storage.db import Database

pytestmark = pytest.mark.anyio

DAY = 86400
START = 1_750_000_000 // DAY * DAY  # a UTC midnight


def _event(ts: int, project: str | None, model: str, status: int = 200, prompt: int = 10) -> UsageEvent:
    return UsageEvent("completions", project, f"key_{project}", model, "/v1/chat/completions", status, prompt, 5, 2, 30,
                      input_micro_usd=prompt * 3, output_micro_usd=5 * 7, ts=ts)  # fmt: skip


async def _report(db: Database, start: int, end: int, width: str) -> list[tuple]:
    page = await usage_report(db, "completions", start_time=start, end_time=end, bucket_width=width,
                              group_by=["project_id", "model"], project_ids=None, models=None, api_key_ids=None,
                              limit=None)  # fmt: skip
    rows = [(b["start_time"], r["project_id"], r["model"], r["num_model_requests"], r["input_tokens"],
             r["output_tokens"], r["input_cached_tokens"]) for b in page["data"] for r in b["results"]]  # fmt: skip
    return sorted(rows, key=str)


async def test_rollups_agree_with_raw_records_and_outlive_them(db: Database) -> None:
    recorder = UsageRecorder(db, batch=7, retention_days=1)
    events = [_event(START + 5 + i * 997, ("a", "b", None)[i % 3], ("m1", "m2")[i % 2], 200 if i % 5 else 429)
              for i in range(200)]  # fmt: skip
    for e in events:
        recorder.record(e)
    # Several flushes at once, as from several replicas: the rollup upserts must not lose counts.
    await asyncio.gather(*(recorder.flush() for _ in range(40)))
    await recorder.close()
    end = START + 3 * DAY
    from_rollups = await _report(db, START, end, "1d")  # hour-aligned: read from the hourly rollups
    from_raw = await _report(db, START + 1, end + 1, "1d")  # not aligned: read from the raw records
    assert sum(r[3] for r in from_rollups) == len([e for e in events if e.status < 400]) == 160
    assert [r[1:] for r in from_rollups] == [r[1:] for r in from_raw]
    assert {r[1] for r in from_rollups} == {"a", "b", None}

    costs = await costs_report(db, start_time=START, end_time=end, bucket_width="1d", group_by=["line_item"],
                               project_ids=None, api_key_ids=None, limit=None)  # fmt: skip
    items: dict[str, float] = {}
    for r in (r for b in costs["data"] for r in b["results"]):
        items[r["line_item"]] = items.get(r["line_item"], 0) + r["amount"]["value"]
    assert items["m1, input"] + items["m2, input"] == pytest.approx(160 * 30 / 1e6)
    assert items["m1, output"] + items["m2, output"] == pytest.approx(160 * 35 / 1e6)

    assert await recorder.prune(now=START + 10 * DAY) == 200  # raw records past retention go
    assert await _report(db, START, end, "1d") == from_rollups  # the rollups stay
    assert await _report(db, START + 1, end + 1, "1d") == []


async def test_no_project_filter_selects_keys_of_no_project(db: Database) -> None:
    recorder = UsageRecorder(db)
    for project in ("a", None, None):
        recorder.record(_event(START + 10, project, "m1"))
    await recorder.flush()
    for start in (START, START + 1):  # rollups and raw records alike
        page = await usage_report(db, "completions", start_time=start, end_time=start + DAY, bucket_width="1d",
                                  group_by=[], project_ids=[None], models=None, api_key_ids=None,
                                  limit=None)  # fmt: skip
        assert [r["num_model_requests"] for b in page["data"] for r in b["results"]] == [2]


def test_migration_moves_old_limits_into_the_rate_limit_table(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    config = Config()
    config.set_main_option("script_location", str(db_module._MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "0007")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.begin() as conn:
        for sql in (
            "INSERT INTO projects (id, name, created_at, rpm, tpm) VALUES ('proj_1', 'p', 1, 6, NULL)",
            "INSERT INTO api_keys (id, name, redacted, secret_hash, project_id, created_at, rpm, tpm, budget_used, "
            "read_only) VALUES ('key_1', 'k', 'r', 'h', 'proj_1', 1, 3, 500, 0, 0)",
            "INSERT INTO usage_records (ts, kind, project_id, key_id, model, endpoint, status, prompt_tokens, "
            "completion_tokens, cached_tokens, latency_ms) VALUES (7201, 'completions', 'proj_1', 'key_1', 'm', "
            "'/v1/x', 200, 4, 5, 0, 9)",
        ):
            conn.execute(sa.text(sql))
    engine.dispose()
    command.upgrade(config, "head")

    async def check() -> None:
        db = Database(url)
        store = LimitStore(db)
        assert await store.of("key", "key_1") == [Limit("key", "key_1", "*", rpm=3, tpm=500)]
        assert await store.of("project", "proj_1") == [Limit("project", "proj_1", "*", rpm=6)]
        page = await usage_report(db, "completions", start_time=7200, end_time=10800, bucket_width="1h", group_by=[],
                                  project_ids=None, models=None, api_key_ids=None, limit=None)  # fmt: skip
        assert page["data"][0]["results"][0]["output_tokens"] == 5  # seeded into the rollups
        await db.close()

    asyncio.run(check())
