"""The tracker audit on the example site: a tag pasted without updating the settings is found.

A page with a script from ``cdn.example.net`` (no configured service covers it) and a
cookie no service declares is added to the example site. After traffic, the middleware's
counts reach the ledger, and ``consentgate audit`` and the dashboard name both.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from consentgate.middleware.cli import main

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.example_site.test_example_site import SECRET_ENV, lifespan  # noqa: E402

TOKEN = "example-dpo-token-" + "e" * 32
PASTED = '<script async src="https://cdn.example.net/chat/widget.js"></script>'


async def kontakt(request: Request) -> HTMLResponse:
    from example_site import pages

    # The imprint page with a chat widget someone pasted into the template.
    html = pages.impressum().replace("</body>", PASTED + "</body>")
    return HTMLResponse(html, headers={"set-cookie": "chat_visitor=42; Path=/"})


@pytest.fixture
async def site(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Starlette, Path]:
    monkeypatch.setenv(SECRET_ENV, "t" * 40)
    monkeypatch.setenv("CONSENTGATE_DPO__TOKEN", TOKEN)
    monkeypatch.chdir(tmp_path)
    from example_site.app import DEFAULT_SETTINGS, create_app

    app = create_app()
    app.router.routes.append(Route("/kontakt", kontakt))
    return app, DEFAULT_SETTINGS


async def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    # In a thread: the command runs its own event loop, as from a shell.
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def test_audit_names_the_pasted_tracker_and_cookie(
    site: tuple[Starlette, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    app, settings_path = site
    transport = httpx.ASGITransport(app=app)
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        for path in ("/", "/strom", "/kontakt", "/kontakt"):
            assert (await client.get(path)).status_code == 200
        # The dashboard adds this process's counts before it reads them.
        page = await client.get("/_consent/admin/", headers={"authorization": f"Bearer {TOKEN}"})
        assert page.status_code == 200
        assert "unbekannter Dienst: cdn.example.net auf /kontakt (2× gesehen" in page.text
        assert "unbekanntes Cookie: chat_visitor auf /kontakt" in page.text
        # Every vendor of the example is configured: nothing else is reported.
        assert page.text.count("unbekannt") == 2
    # After shutdown the CLI reads the same ledger (the example's relative SQLite file).
    code, out, _err = await run_cli(capsys, "--config", str(settings_path), "audit")
    assert code == 1  # findings: a CI job can fail on them
    assert "unbekannter Dienst: cdn.example.net auf /kontakt (2× gesehen" in out
    assert "unbekanntes Cookie: chat_visitor auf /kontakt" in out
    code, out, _err = await run_cli(capsys, "--config", str(settings_path), "audit", "--lang", "en")
    assert "unknown service: cdn.example.net on /kontakt" in out
    code, out, _err = await run_cli(capsys, "--config", str(settings_path), "audit", "--json")
    findings = json.loads(out)
    assert {(f["kind"], f["name"], f["path"], f["count"]) for f in findings} == {
        ("host", "cdn.example.net", "/kontakt", 2),
        ("cookie", "chat_visitor", "/kontakt", 2),
    }


async def test_audit_hides_findings_the_settings_now_cover(
    site: tuple[Starlette, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    app, settings_path = site
    transport = httpx.ASGITransport(app=app)
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        assert (await client.get("/kontakt")).status_code == 200
    # The operator declares the chat widget as a service of its own.
    fixed = tmp_path / "fixed.toml"
    fixed.write_text(
        settings_path.read_text(encoding="utf-8")
        + """
[services.chat]
name = "Chat"
category = "preferences"
hosts = ["cdn.example.net"]
privacy_policy_url = "https://chat.example.net/privacy"
provider = { name = "Chat GmbH", address = "Weg 1, 20095 Hamburg", country = "DE" }
description = { de = "Ein Chat-Fenster.", en = "A chat window." }
cookies = [{ name = "chat_visitor", lifetime_days = 30 }]
""",
        encoding="utf-8",
    )
    code, out, err = await run_cli(capsys, "--config", str(fixed), "audit")
    assert (code, out) == (0, "")
    assert "keine unbekannten Dienste" in err
    code, _out, err = await run_cli(capsys, "--config", str(settings_path), "audit", "--clear")
    assert code == 0 and "cleared 2 finding(s)" in err
    code, out, _err = await run_cli(capsys, "--config", str(settings_path), "audit")
    assert (code, out) == (0, "")
