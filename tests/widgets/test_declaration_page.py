"""The generated cookie declaration on the example site's privacy page, in Debian's Chromium."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from playwright.sync_api import BrowserContext, FloatRect, Page

from consentgate.widgets import render_declaration
from tests.widgets.browser import SiteServer, TrackerLog, artifacts_dir

NewContext = Callable[..., tuple[BrowserContext, TrackerLog]]

DECLARATION = "[data-consentgate-declaration]"
BANNER = '[data-consentgate="banner"]'
#: The width of the README's picture (docs/declaration.png is copied from this artifact).
README_WIDTH = 800


def records(site: SiteServer) -> int:
    with sqlite3.connect(site.db_path) as db:
        count: int = db.execute("SELECT count(*) FROM records").fetchone()[0]
    return count


def open_privacy_page(page: Page, site: SiteServer) -> None:
    """Open /datenschutz as a first-time visitor and close the banner without deciding."""
    page.goto(site.url + "/datenschutz", wait_until="load")
    page.evaluate("window.consentgate.ready")
    page.keyboard.press("Escape")
    page.wait_for_selector(f"{BANNER}", state="hidden")


def test_declaration_is_shown_and_its_button_opens_the_settings(
    page: Page, trackers: TrackerLog, site: SiteServer
) -> None:
    open_privacy_page(page, site)
    section = page.locator(DECLARATION)
    assert section.count() == 1 and section.is_visible()
    expected = render_declaration(site.settings(), "de", "html")
    assert section.get_attribute("data-fingerprint") == expected.fingerprint
    assert section.get_attribute("lang") == "de"
    for service in site.settings().services:
        assert section.locator(f"h3#{service}").is_visible(), service
    assert section.locator("h3#consentgate-access-log").inner_text() == "Server-Protokolle"
    page.screenshot(path=artifacts_dir() / "declaration-page.png", full_page=True)
    section.screenshot(path=artifacts_dir() / "declaration.png")
    # Keyboard only: focus the declaration's own withdraw button and press Enter.
    before = records(site)
    button = section.locator("button[data-consentgate-open]")
    assert button.inner_text() == "Cookie-Einstellungen"
    button.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector(f"{BANNER}:not([hidden])")
    assert page.evaluate(f"document.querySelector('{BANNER}').contains(document.activeElement)")
    assert page.locator('[data-consentgate-action="save"]').is_visible(), "the settings layer"
    assert page.locator('input[data-consentgate-service="youtube"]').count() == 1
    page.keyboard.press("Escape")
    page.wait_for_selector(f"{BANNER}", state="hidden")
    focused_in_declaration = page.evaluate(
        f"document.querySelector('{DECLARATION}').contains(document.activeElement)"
    )
    assert focused_in_declaration, "focus returns to the button"
    assert records(site) == before, "opening and closing records nothing"
    page.wait_for_timeout(300)
    assert trackers.hosts() == set(), "the privacy page contacts no vendor"


def test_anchor_links_reach_the_service_sections(page: Page, site: SiteServer) -> None:
    page.goto(site.url + "/datenschutz#youtube", wait_until="load")
    page.evaluate("window.consentgate.ready")
    heading = page.locator("h3#youtube")
    assert heading.inner_text() == "Einsatz von YouTube"
    assert page.evaluate("location.hash") == "#youtube"
    assert heading.is_visible()


def test_readme_picture_of_the_declaration(new_context: NewContext, site: SiteServer) -> None:
    """Saves test-artifacts/declaration-readme.png, the source of docs/declaration.png."""
    context, _ = new_context(
        persistent=False, viewport={"width": README_WIDTH, "height": 900}, device_scale_factor=1
    )
    page = context.new_page()
    open_privacy_page(page, site)
    top = page.locator(f"{DECLARATION} h3#youtube").bounding_box()
    youtube_table = page.locator(f"{DECLARATION} h3#youtube ~ div.consentgate-table").first
    end = youtube_table.locator("tbody tr").first.bounding_box()
    assert top is not None and end is not None
    # One service's section: facts, the two-click solution, transfer, the cookie table's start.
    height = end["y"] + end["height"] - top["y"] + 24
    clip: FloatRect = {"x": 0, "y": top["y"] - 16, "width": README_WIDTH, "height": height}
    path = artifacts_dir() / "declaration-readme.png"
    page.screenshot(path=path, clip=clip, full_page=True)
    assert path.read_bytes()[16:20] == README_WIDTH.to_bytes(4, "big"), "PNG width"
