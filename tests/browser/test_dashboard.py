"""The dashboard in a real browser: Debian's chromium driven by Playwright, against a real server
on the default chat and embedding models, with requests made through the official SDK.

Screenshots of every page are saved to reports/dashboard/ (test artifacts)."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import REPO, create_key, homeport_cli, start_server, stop_server, wait_for_status

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (./run test installs it)")

CHAT = "smollm2-135m-instruct"
EMBED = "all-minilm-l6-v2"
SHOTS = REPO / "reports" / "dashboard"
SAILING = ("A bowline makes a fixed loop at the end of a line. Sailors tie it to moor a boat because it holds "
           "under load and still unties easily. The clove hitch is quicker but can slip.")  # fmt: skip


class Site:
    def __init__(self, server: Any, env: dict[str, str], secrets: dict[str, str], ids: dict[str, str]) -> None:
        self.server, self.env, self.secrets, self.ids = server, env, secrets, ids
        self.root = server.root

    def client(self, who: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.server.base_url, api_key=self.secrets[who], max_retries=0, timeout=120)

    def admin_get(self, path: str, **params: Any) -> dict[str, Any]:
        r = httpx.get(f"{self.root}{path}", params=params, headers={"authorization": f"Bearer {self.secrets['admin']}"})
        r.raise_for_status()
        return r.json()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    config = {"load_models": [CHAT, EMBED], "cache_enabled": False, "vector_store_model": EMBED}
    server = start_server(tmp_path_factory.mktemp("dashboard"), config)
    env = {"HOMEPORT_DATA_DIR": str(server.data_dir)}
    secrets = {"admin": create_key(env, "--name", "ops-admin", "--admin"),
               "alpha": create_key(env, "--name", "alpha-key", "--project", "alpha"),
               "beta": create_key(env, "--name", "beta-key", "--project", "beta")}  # fmt: skip
    homeport_cli(env, "projects", "set", "alpha", "--log-prompts")
    site = Site(server, env, secrets, {})
    projects = site.admin_get("/v1/organization/projects")["data"]
    site.ids = {p["name"]: p["id"] for p in projects}
    for name in ("alpha", "beta"):
        keys = site.admin_get(f"/v1/organization/projects/{site.ids[name]}/api_keys")["data"]
        site.ids[f"{name}-key"] = keys[0]["id"]
    yield site
    stop_server(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture
def signed_in(browser: Any, site: Site) -> Iterator[Callable[[str], Any]]:
    """signed_in(who) → a page of a fresh browser context, signed in with that key."""
    contexts = []

    def sign_in(who: str) -> Any:
        context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{site.root}/dashboard")
        assert "/dashboard/sign-in" in page.url  # no session: the sign-in form
        page.fill("#key", site.secrets[who])
        page.click("button[type=submit]")
        page.wait_for_url(f"{site.root}/dashboard")
        return page

    yield sign_in
    for context in contexts:
        context.close()


def _audit(site: Site, kind: str) -> list[dict[str, Any]]:
    return site.admin_get("/v1/organization/audit_logs", **{"event_types[]": kind, "limit": 100})["data"]


def _until(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    """Wait on a condition with a generous deadline (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return found


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_sign_in_refuses_a_wrong_key_and_audits_both(browser: Any, site: Site, signed_in: Callable[[str], Any]) -> None:
    context = browser.new_context()
    page = context.new_page()
    response = page.goto(f"{site.root}/dashboard/keys")
    assert "/dashboard/sign-in?next=/dashboard/keys" in page.url and response.status == 200
    _shot(page, "sign-in")
    page.fill("#key", "sk-hp-not-a-real-key-000000000000")
    with page.expect_response(lambda r: r.url.endswith("/dashboard/sign-in") and r.request.method == "POST") as r:
        page.click("button[type=submit]")
    assert r.value.status == 401 and "not valid" in page.text_content("[role=alert]")
    cookies = {c["name"]: c for c in context.cookies()}
    assert "homeport_session" not in cookies
    page.fill("#key", site.secrets["admin"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.root}/dashboard/keys")  # back where the visitor was going
    session = {c["name"]: c for c in context.cookies()}["homeport_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert site.secrets["admin"] not in session["value"]  # the cookie names the key; it never holds the secret
    context.close()
    assert _audit(site, "login.failed") and _audit(site, "login.succeeded")
    page = signed_in("alpha")
    page.click("text=Sign out")
    page.wait_for_url("**/dashboard/sign-in")
    assert _audit(site, "logout.succeeded")


def test_a_project_key_sees_only_its_own_project(site: Site, signed_in: Callable[[str], Any]) -> None:
    site.client("alpha").embeddings.create(model=EMBED, input="alpha's request")
    site.client("beta").embeddings.create(model=EMBED, input="beta's request")
    page = signed_in("alpha")
    assert "project alpha" in page.text_content(".who")
    page.goto(f"{site.root}/dashboard/keys")
    keys = page.text_content("#keys")
    assert "alpha-key" in keys and "beta-key" not in keys and "ops-admin" not in keys
    assert page.locator("#create-key").count() == 0 and page.locator("button:has-text('Revoke')").count() == 0
    # Logs: alpha's requests, never beta's (waiting for the usage writer's next batch).
    page.goto(f"{site.root}/dashboard/logs")
    _until(lambda: page.reload() and "alpha-key" in page.text_content("#logs"), what="alpha's request in the logs")
    assert "beta-key" not in page.text_content("#logs")
    # Another project's pages and filters: not found, or ignored.
    response = page.goto(f"{site.root}/dashboard/projects/{site.ids['beta']}")
    assert response.status == 404
    page.goto(f"{site.root}/dashboard/usage?project={site.ids['beta']}&key={site.ids['beta-key']}&days=1")
    assert page.text_content("#kpi-requests").strip() == "0"  # beta's key filter inside alpha's scope
    page.goto(f"{site.root}/dashboard/usage?project={site.ids['beta']}&days=1")
    assert int(page.text_content("#kpi-requests").replace(",", "")) >= 1  # alpha's own, project filter ignored
    # Changing keys takes an admin key, even with the session's own CSRF token.
    token = page.get_attribute('meta[name="csrf-token"]', "content")
    refused = page.request.post(f"{site.root}/dashboard/keys/{site.ids['beta-key']}/revoke", form={"csrf": token})
    assert refused.status == 403
    site.client("beta").models.list()  # still live


def test_an_admin_creates_and_revokes_a_key(site: Site, signed_in: Callable[[str], Any]) -> None:
    page = signed_in("admin")
    page.goto(f"{site.root}/dashboard/keys")
    # Bad input: a clear error, nothing created.
    page.select_option("select[name=project_id]", label="alpha")
    page.fill("#create-key input[name=name]", "bad-budget")
    page.fill("input[name=budget_usd]", "-5")
    page.click("#create-key button[type=submit]")
    assert "budget_usd" in page.text_content("[role=alert]") and "bad-budget" not in page.text_content("#keys")
    page.select_option("select[name=project_id]", label="alpha")
    page.fill("#create-key input[name=name]", "bad-expiry")
    page.fill("input[name=expires_in_days]", "1e400")  # an infinity, once read
    page.click("#create-key button[type=submit]")
    alert = playwright_api.expect(page.locator("[role=alert]"))  # waits for the answer's page, not the last one
    alert.to_contain_text("numbers are expected", timeout=60_000)
    assert "bad-expiry" not in page.text_content("#keys")
    page.fill("input[name=rpm]", "3000000000")  # past what the database holds
    page.select_option("select[name=project_id]", label="alpha")
    page.fill("#create-key input[name=name]", "bad-rpm")
    page.click("#create-key button[type=submit]")
    alert.to_contain_text("max_requests_per_1_minute", timeout=60_000)
    assert "bad-rpm" not in page.text_content("#keys")
    # A key limited to the chat model.
    page.select_option("select[name=project_id]", label="alpha")
    page.fill("#create-key input[name=name]", "made-in-browser")
    page.check(f"input[name=models][value='{CHAT}']")
    page.click("#create-key button[type=submit]")
    page.wait_for_url("**/dashboard/keys")
    secret = page.input_value("#secret")
    assert secret.startswith("sk-hp-") and "only this once" in page.text_content("main")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click("button.copy")
    playwright_api.expect(page.locator("button.copy")).to_have_text("Copied")  # waits: the copy is async
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    _shot(page, "key-created")
    made = openai.OpenAI(base_url=site.server.base_url, api_key=secret, max_retries=0)
    assert made.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "Hi"}], max_tokens=2).id
    with pytest.raises(openai.NotFoundError):  # its model allow-list holds
        made.embeddings.create(model=EMBED, input="x")
    # Revoke it (the page asks first).
    page.goto(f"{site.root}/dashboard/keys")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("tr:has-text('made-in-browser') button:has-text('Revoke')")
    page.wait_for_selector("[role=status]")
    assert "Revoked made-in-browser" in page.text_content("[role=status]")
    assert "made-in-browser" not in page.text_content("#keys")

    def refused() -> bool:
        try:
            made.models.list()
            return False
        except openai.AuthenticationError:
            return True

    _until(refused, what="the revoked key to be refused")
    scopes = ["all", f"model:{CHAT}"]
    created = [e for e in _audit(site, "api_key.created") if e["api_key.created"]["data"]["scopes"] == scopes]
    assert created and _audit(site, "api_key.deleted")


def test_the_usage_chart_reflects_requests_just_made(site: Site, signed_in: Callable[[str], Any]) -> None:
    page = signed_in("admin")
    page.goto(f"{site.root}/dashboard?days=1&model={EMBED}")
    before = int(page.text_content("#kpi-requests").replace(",", ""))
    alpha = site.client("alpha")
    for text in ("one", "two", "three"):
        alpha.embeddings.create(model=EMBED, input=text)

    def counted() -> bool:
        page.reload()
        return int(page.text_content("#kpi-requests").replace(",", "")) == before + 3

    _until(counted, what="the overview to count the three requests")
    bars = page.locator("svg.chart rect title").all_text_contents()
    assert any(EMBED in t for t in bars)
    assert page.locator("#top-keys").text_content().count("alpha-key") == 1
    _shot(page, "overview")
    page.goto(f"{site.root}/dashboard/usage?days=7&stack=project_id")
    assert "alpha" in page.text_content(".legend")
    with page.expect_download() as download:
        page.click("text=Export CSV")
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0].startswith("day,kind,project_id,key_id,model,requests")
    assert any(f",{EMBED}," in line and f",{site.ids['alpha']}," in line for line in lines[1:])
    _shot(page, "usage")


def test_the_playground_streams_an_answer_and_shows_its_code(site: Site, signed_in: Callable[[str], Any]) -> None:
    page = signed_in("admin")
    page.goto(f"{site.root}/dashboard/playground")
    page.select_option("select[name=project]", label="alpha")
    page.select_option("select[name=model]", CHAT)
    page.fill("input[name=max_tokens]", "24")
    page.fill("#prompt", "Name three colors.")
    # Count the answer's updates as they arrive: more than one means it streamed.
    page.evaluate("""() => { window.updates = 0; new MutationObserver((m) => { window.updates += m.length; })
                     .observe(document.querySelector('#messages'), {subtree: true, childList: true,
                                                                     characterData: true}); }""")
    page.click("#send")
    page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Done')", timeout=120_000)
    answer = page.locator(".message.assistant .content").last.text_content()
    assert answer.strip() and page.evaluate("window.updates") > 3
    assert "out" in page.text_content("#status")
    page.click("#view-code")
    python = page.text_content("#code-python")
    assert "client.chat.completions.create(" in python and f'model="{CHAT}"' in python and "stream=True" in python
    assert "Name three colors." in python and "/v1/chat/completions" in page.text_content("#code-curl")
    _shot(page, "playground")
    # Structured output: the schema box makes the answer JSON that validates.
    page.click("text=Clear")
    page.uncheck("input[name=stream]")
    page.click("text=Structured output (JSON schema)")
    schema = {"type": "object", "properties": {"color": {"type": "string", "enum": ["red", "green", "blue"]}},
              "required": ["color"], "additionalProperties": False}  # fmt: skip
    page.fill("textarea[name=schema]", json.dumps(schema))
    page.fill("input[name=max_tokens]", "40")
    page.fill("#prompt", "Pick a color.")
    page.click("#send")
    page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('Done')", timeout=120_000)
    assert json.loads(page.locator(".message.assistant .content").last.text_content())["color"] in ("red", "green",
                                                                                                    "blue")  # fmt: skip
    # Alpha logs its prompts: the playground's request is on the logs page with its prompt.
    page.goto(f"{site.root}/dashboard/logs?project={site.ids['alpha']}")
    _until(lambda: page.reload() and "Name three colors." in page.inner_html("#logs"), what="the prompt log")
    _shot(page, "logs")


def test_a_forged_form_is_refused(browser: Any, site: Site, signed_in: Callable[[str], Any]) -> None:
    page = signed_in("admin")
    target = f"{site.root}/dashboard/keys/{site.ids['beta-key']}/revoke"
    # The session's cookie alone is not enough: no token, or a wrong one, is refused.
    assert page.request.post(target, form={}).status == 403
    assert page.request.post(target, form={"csrf": "forged"}).status == 403
    assert page.request.post(f"{site.root}/dashboard/keys", form={"csrf": "x", "project_id": site.ids["alpha"],
                                                                   "name": "forged"}).status == 403  # fmt: skip
    # A page on another origin that submits a form at Homeport as soon as it loads.
    forge = (f'<form id="f" method="post" action="{target}"><input name="csrf" value="guess"></form>'
             "<script>document.getElementById('f').submit()</script>")  # fmt: skip

    class Forger(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(forge.encode())

        def log_message(self, *args: Any) -> None:
            pass

    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forger)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        with page.expect_response(lambda r: r.url == target) as answer:
            page.goto(f"http://localhost:{attacker.server_address[1]}/")
        assert answer.value.status in (401, 403)
    finally:
        attacker.shutdown()
    # Sign-in without the login form's token: refused too.
    assert page.request.post(f"{site.root}/dashboard/sign-in", form={"key": site.secrets["admin"]}).status == 403
    key = site.admin_get(f"/v1/organization/projects/{site.ids['beta']}/api_keys/{site.ids['beta-key']}")
    assert key["id"] == site.ids["beta-key"]  # not revoked
    site.client("beta").models.list()


def test_files_and_a_vector_store_search(site: Site, signed_in: Callable[[str], Any], tmp_path: Path) -> None:
    page = signed_in("admin")
    page.goto(f"{site.root}/dashboard/data?project={site.ids['alpha']}")
    notes = tmp_path / "knots.txt"
    notes.write_text(SAILING)
    page.set_input_files("#upload input[type=file]", str(notes))
    page.select_option("#upload select[name=purpose]", "assistants")
    page.click("#upload button[type=submit]")
    assert "Uploaded knots.txt" in page.text_content("[role=status]")
    file_id = page.locator("#files tr:has-text('knots.txt') code").text_content()
    alpha = site.client("alpha")
    store = alpha.vector_stores.create(name="sailing notes", file_ids=[file_id])
    wait_for_status(lambda: alpha.vector_stores.retrieve(store.id), ("completed",))
    page.goto(f"{site.root}/dashboard/data?project={site.ids['alpha']}")
    page.fill("#search input[name=q]", "which knot holds a boat")
    page.click("#search button[type=submit]")
    results = page.text_content("#results")
    assert "knots.txt" in results and "bowline" in results
    assert 0 < float(page.locator("#results .score").first.text_content()) <= 1
    _shot(page, "files-and-vector-stores")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#files tr:has-text('knots.txt') button:has-text('Delete')")
    assert f"Deleted {file_id}" in page.text_content("[role=status]")
    with pytest.raises(openai.NotFoundError):
        alpha.files.retrieve(file_id)


def test_batches_responses_and_conversations_are_listed(site: Site, signed_in: Callable[[str], Any]) -> None:
    alpha = site.client("alpha")
    response = alpha.responses.create(model=CHAT, input="Say hello.", max_output_tokens=16)
    conversation = alpha.conversations.create(metadata={"topic": "dashboard"})
    line = {"custom_id": "one", "method": "POST", "url": "/v1/embeddings", "body": {"model": EMBED, "input": "hi"}}
    batch_file = alpha.files.create(file=("lines.jsonl", json.dumps(line).encode()), purpose="batch")
    batch = alpha.batches.create(input_file_id=batch_file.id, endpoint="/v1/embeddings", completion_window="24h")
    wait_for_status(lambda: alpha.batches.retrieve(batch.id), ("completed",))
    page = signed_in("alpha")
    page.goto(f"{site.root}/dashboard/work")
    assert response.id in page.text_content("#responses") and response.status in page.text_content("#responses")
    assert conversation.id in page.text_content("#conversations")
    row = page.locator(f"#batches tr:has-text('{batch.id}')")
    assert "completed" in row.text_content() and "1 / 0 / 1" in row.text_content()
    with page.expect_download() as download:
        row.locator("text=output").click()
    assert json.loads(Path(download.value.path()).read_text().splitlines()[0])["custom_id"] == "one"
    _shot(page, "batches-and-responses")


def test_every_page_renders_without_script_errors(site: Site, signed_in: Callable[[str], Any]) -> None:
    page = signed_in("admin")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    pages = {"models": "/dashboard/models", "keys": "/dashboard/keys", "projects": "/dashboard/projects",
             "project": f"/dashboard/projects/{site.ids['alpha']}"}
    for name, path in pages.items():
        response = page.goto(f"{site.root}{path}")
        assert response.status == 200 and page.locator("h1").count() == 1
        _shot(page, name)
    page.goto(f"{site.root}/dashboard/models")
    row = page.locator(f"#models tr:has-text('{CHAT}')").text_content()
    assert "loaded" in row and "llamacpp" in row
    # A limit set on the project page holds on the API.
    page.goto(f"{site.root}/dashboard/projects/{site.ids['beta']}")
    page.fill(f"input[aria-label='{EMBED} max_requests_per_1_minute']", "1")
    page.click(f"button[aria-label='Save limits on {EMBED}']")
    assert "saved" in page.text_content("[role=status]")
    beta = site.client("beta")

    def limited() -> bool:
        try:
            beta.embeddings.create(model=EMBED, input="x")
            return False
        except openai.RateLimitError:
            return True

    _until(limited, what="the new limit")
    # Numbers no column holds are a message, and nothing changes.
    page.goto(f"{site.root}/dashboard/projects/{site.ids['beta']}")
    page.fill(f"input[aria-label='{EMBED} max_requests_per_1_minute']", "1e400")
    page.click(f"button[aria-label='Save limits on {EMBED}']")
    alert = playwright_api.expect(page.locator("[role=alert]"))  # waits for the answer's page, not the last one
    alert.to_contain_text("whole numbers are expected", timeout=60_000)
    for days, message in (("1e400", "whole number of days (empty"), ("40000", "at most 36500")):
        page.fill("input[name=retention_days]", days)
        page.click("#project-settings button[type=submit]")
        alert.to_contain_text(message, timeout=60_000)
        assert page.input_value("input[name=retention_days]") == ""  # still kept for ever
    assert limited()
    assert not errors, errors
