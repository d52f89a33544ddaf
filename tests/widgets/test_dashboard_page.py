"""The DPO dashboard in a real Chromium: sign-in by keyboard, axe-core, a screenshot."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page

from consentgate.config import PRESET_IDS
from consentgate.consent import new_consent_id
from consentgate.consent.sqlite import SQLiteStore
from tests.consent.drafts import draft
from tests.widgets.browser import SiteServer, artifacts_dir
from tests.widgets.conftest import NewContext
from tests.widgets.test_banner import axe

TOKEN = "dashboard-demo-token-" + "d" * 32
ADMIN = "/_consent/admin/"


def fill_ledger(path: Path, days: int = 30) -> int:
    """Store a month of plausible decisions (in a thread: the browser's loop is not ours)."""
    rng = random.Random(7)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    optional = list(PRESET_IDS)
    drafts = []
    for day in range(days):
        for n in range(rng.randint(15, 45)):
            roll = rng.random()
            if roll < 0.45:
                action, granted = "accept-all", optional
            elif roll < 0.75:
                action, granted = "reject-all", []
            else:
                action = "custom"
                granted = [s for s in optional if rng.random() < 0.4] or ["matomo"]
            drafts.append(
                draft(
                    consent_id=new_consent_id(),
                    time=now - timedelta(days=day, minutes=n * 7),
                    action=action,
                    granted=tuple(sorted(granted)),
                    refused=tuple(sorted(set(optional) - set(granted))),
                )
            )
    drafts.sort(key=lambda d: d.time)

    async def fill() -> None:
        store = SQLiteStore(path)
        try:
            await store.append_many(drafts)
        finally:
            await store.close()

    worker = threading.Thread(target=asyncio.run, args=(fill(),))
    worker.start()
    worker.join()
    return len(drafts)


@pytest.fixture
def dashboard_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SiteServer]:
    monkeypatch.setenv("CONSENTGATE_DPO__TOKEN", TOKEN)
    site = SiteServer(directory=tmp_path / "site")
    (tmp_path / "site").mkdir()
    fill_ledger(site.db_path)
    with site:
        yield site


@pytest.fixture
def admin_page(new_context: NewContext) -> Page:
    # The dashboard's CSP allows no script at all; axe-core is injected around it.
    context, _log = new_context(persistent=False, bypass_csp=True)
    return context.new_page()


def test_dashboard_signs_in_by_keyboard_and_passes_axe(
    dashboard_site: SiteServer, admin_page: Page
) -> None:
    page = admin_page
    page.set_viewport_size({"width": 1100, "height": 900})
    response = page.goto(dashboard_site.url + ADMIN)
    assert response is not None and response.status == 401
    assert page.evaluate("document.activeElement.id") == "token"  # autofocus on the field
    assert axe(page, "body") == []
    page.keyboard.type(TOKEN)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: url.endswith("/_consent/admin/?lang=de"))
    assert page.locator("h1").inner_text().startswith("Einwilligungen")
    figures = page.locator("dl.figures")
    assert "Hash-Kette" in figures.inner_text() and "intakt" in figures.inner_text()
    assert page.locator("svg[role=img]").count() == 4
    # Keyboard: the skip link comes first and leads to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # Every control is reachable by Tab, in reading order.
    reached = []
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.append(
            page.evaluate(
                "(() => { const e = document.activeElement;"
                " return e.id || e.textContent.trim().slice(0, 30) })()"
            )
        )
    for wanted in ("range", "Anzeigen", "Kette jetzt prüfen", "format", "Herunterladen"):
        assert wanted in reached, (wanted, reached)
    # A table opens from the keyboard too.
    summary = page.locator("summary").first
    summary.focus()
    page.keyboard.press("Enter")
    assert page.locator("details").first.get_attribute("open") is not None
    assert axe(page, "body") == []
    page.screenshot(path=artifacts_dir() / "dashboard.png", full_page=True)
    # The README's picture: the key figures and the first chart.
    page.locator("details").first.evaluate("d => d.open = false")
    page.evaluate("document.activeElement.blur(); window.scrollTo(0, 0)")
    page.screenshot(
        path=artifacts_dir() / "dashboard-top.png",
        clip={"x": 0, "y": 0, "width": 1100, "height": 1010},
    )


def test_dashboard_works_without_javascript(
    dashboard_site: SiteServer, new_context: NewContext
) -> None:
    context, _log = new_context(persistent=False, java_script_enabled=False)
    page = context.new_page()
    page.goto(dashboard_site.url + ADMIN + "?lang=en")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: url.endswith("/_consent/admin/?lang=en"))
    assert "Decisions" in page.locator("dl.figures").inner_text()
    page.select_option("#range", "90")
    page.click("text=Show")
    page.wait_for_url(lambda url: "range=90" in url)
    assert page.locator("#range").input_value() == "90"
    with page.expect_download() as download:
        page.click("form[action$='/export'] button")
    assert download.value.suggested_filename.endswith(".csv")
