"""The dashboard's figures on SQLite and PostgreSQL: days, error rate and latency percentiles from
the hourly tables agree with the raw records they were written with; charts and session cookies."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from homeport.api.dashboard.charts import Series, stacked_bars
from homeport.api.dashboard.session import Signer
from homeport.services.dashboard import figures
from homeport.services.dashboard.figures import Scope
from homeport.services.platform.usage import UsageEvent, UsageRecorder, bucket_ms, latency_bucket
from homeport.storage import db as db_module
from homeport.storage.db import Database

pytestmark = pytest.mark.anyio

DAY = 86400
START = 1_750_000_000 // DAY * DAY


def _event(ts: int, project: str | None, key: str, model: str, latency_ms: int, status: int = 200) -> UsageEvent:
    return UsageEvent("completions", project, key, model, "/v1/chat/completions", status, 10, 4, 0, latency_ms,
                      input_micro_usd=30, output_micro_usd=20, ts=ts, request_id=f"req_{ts}_{latency_ms}")  # fmt: skip


def test_latency_buckets_are_quarter_octaves() -> None:
    for ms in (1, 2, 3, 7, 100, 999, 12_345, 600_000):
        upper = bucket_ms(latency_bucket(ms))
        assert ms <= upper + 1e-9 < ms * 2 ** 0.25 + 1e-6


async def test_figures_agree_with_the_records(db: Database) -> None:
    recorder = UsageRecorder(db, batch=50)
    events = []
    for i in range(400):  # two days, two projects, three keys, two models; every 10th request fails
        ts = START + (i % 2) * DAY + 60 * i
        project, key = (("p1", "k1"), ("p1", "k2"), ("p2", "k3"))[i % 3]
        events.append(_event(ts, project, key, ("m-fast", "m-slow")[i % 2], latency_ms=(5 + i % 7 if i % 2 == 0 else
                                                                                      200 + 10 * (i % 50)),
                             status=500 if i % 10 == 0 else 200))  # fmt: skip
    for e in events:
        recorder.record(e)
    while not recorder._queue.empty():  # noqa: SLF001 (write everything now, in batches)
        await recorder.flush()
    scope = Scope(START, START + 2 * DAY)

    days, groups = await figures.daily(db, scope)
    ok = [e for e in events if e.status < 400]
    assert sum(d.requests for d in days) == len(ok)  # usage counts served requests, as OpenAI's does
    assert [d.requests for d in days] == [sum(1 for e in ok if (e.ts - START) // DAY == n) for n in (0, 1)]
    assert sum(d.input_tokens for d in days) == 10 * len(ok) and sum(d.micro_usd for d in days) == 50 * len(ok)
    assert set(groups) == {"m-fast", "m-slow"}

    rows = {r.model: r for r in await figures.latency(db, scope)}
    assert rows["all"].requests == 400 and rows["all"].errors == 40
    for model in ("m-fast", "m-slow"):
        latencies = sorted(e.latency_ms for e in events if e.model == model)
        exact_p50, exact_p99 = latencies[len(latencies) // 2 - 1], latencies[int(0.99 * len(latencies)) - 1]
        assert exact_p50 <= rows[model].p50_ms < exact_p50 * 1.19 + 1  # type: ignore[operator]
        assert exact_p99 <= rows[model].p99_ms < exact_p99 * 1.19 + 1  # type: ignore[operator]

    p1 = {r.model: r for r in await figures.latency(db, Scope(START, START + 2 * DAY, project_id="p1"))}
    assert p1["all"].requests == sum(1 for e in events if e.project_id == "p1")

    top = await figures.top_keys(db, scope)
    assert [t.key_id for t in top][:1] == ["k1"] and {t.key_id for t in top} == {"k1", "k2", "k3"}
    assert sum(t.requests for t in top) == len(ok)

    latest = await figures.recent(db, "p2", limit=5)
    assert [r.project_id for r in latest] == ["p2"] * 5 and latest[0].id > latest[-1].id
    assert latest[0].request_id is not None

    csv = await figures.csv_rows(db, Scope(START, START + 2 * DAY, key_id="k3"))
    assert {row[3] for row in csv} == {"k3"} and sum(row[5] for row in csv) == sum(1 for e in ok if e.key_id == "k3")


def test_chart_is_an_accessible_svg_with_a_bar_per_day() -> None:
    days = [START + i * DAY for i in range(3)]
    svg = stacked_bars("Tokens per day <by model>", days, [Series("m1", [1, 0, 3]), Series("m2", [2, 2, 0])])
    assert svg.startswith('<svg class="chart"') and 'role="img"' in svg
    assert "&lt;by model&gt;" in svg  # escaped
    assert svg.count("<rect") == 4  # zero values draw nothing
    assert "m1: 3" in svg and 'class="swatch s1"' in svg
    many = stacked_bars("t", days, [Series(f"s{i}", [1, 1, 1]) for i in range(12)])
    assert "other" in many and many.count('class="swatch') == 8


def test_session_cookies_are_signed_and_expire() -> None:
    signer = Signer(b"k" * 32, max_age_s=60)
    cookie = signer.issue("key_1")
    session = signer.read(cookie)
    assert session is not None and session.key_id == "key_1"
    payload, mac = cookie.split(".")
    assert signer.read(payload + "." + mac[:-2] + "AA") is None  # tampered signature
    assert Signer(b"x" * 32, 60).read(cookie) is None  # another secret
    assert signer.read(None) is None and signer.read("garbage") is None
    assert Signer(b"k" * 32, max_age_s=-1).read(Signer(b"k" * 32, -1).issue("key_1")) is None  # expired
    token = signer.csrf(session.nonce)
    assert signer.csrf_ok(session.nonce, token) and not signer.csrf_ok(session.nonce, token[:-1] + "x")
    assert not signer.csrf_ok(session.nonce, None) and not signer.csrf_ok(None, token)
    assert time.time() < session.expires_at


def test_migration_fills_the_daily_tables_from_what_is_stored(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    config = Config()
    config.set_main_option("script_location", str(db_module._MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "0021")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    columns = "ts, kind, project_id, key_id, model, endpoint, status, prompt_tokens, completion_tokens, " \
              "cached_tokens, latency_ms"  # fmt: skip
    with engine.begin() as conn:
        for i, (status, latency) in enumerate(((200, 10), (200, 100), (500, 3), (200, 1000))):
            values = f"{START + 3600 * i}, 'completions', 'p1', 'k1', 'm', '/v1/chat/completions', {status}, 5, 1, 0"
            conn.execute(sa.text(f"INSERT INTO usage_records ({columns}) VALUES ({values}, {latency})"))
        for hour in (0, 1, 25):  # two hours of the first day, one of the second
            values = f"{START + 3600 * hour}, 'completions', 'p1', 'k1', 'm', 2, 10, 4, 0, 7, 3, 0"
            conn.execute(sa.text(f"INSERT INTO usage_hourly VALUES ({values})"))
    command.upgrade(config, "head")
    with engine.begin() as conn:
        daily = conn.execute(sa.text("SELECT day, requests, prompt_tokens, input_micro_usd FROM usage_daily "
                                     "ORDER BY day")).all()  # fmt: skip
        stats = conn.execute(sa.text("SELECT latency_bucket, requests, errors FROM request_stats_daily "
                                     "ORDER BY latency_bucket")).all()  # fmt: skip
    assert daily == [(START, 4, 20, 14), (START + DAY, 2, 10, 7)]
    assert stats == [(latency_bucket(3), 1, 1), (latency_bucket(10), 1, 0), (latency_bucket(100), 1, 0),
                     (latency_bucket(1000), 1, 0)]  # fmt: skip
