"""The banner and the two-click placeholders in Debian's Chromium, on the example site.

Every test records each attempt the browser makes to reach a third-party host (requests are
answered with stubs; preconnects show up at the recording proxy), so "no tracker before
consent" is checked on the wire, not in the markup.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.widgets.browser import (
    TRACKER_HOSTS,
    SiteServer,
    TrackerLog,
    artifacts_dir,
    axe_source,
    resource_hint_hosts,
)

NewContext = Callable[..., tuple[BrowserContext, TrackerLog]]

PAGES = ["/", "/strom", "/kundencenter", "/ueber-uns", "/datenschutz", "/impressum"]
BANNER = '[data-consentgate="banner"]'
GTM = "www.googletagmanager.com"
ETRACKER = "code.etracker.com"
MATOMO = "statistik.stadtwerke-musterstadt.de"
FACEBOOK = "connect.facebook.net"
YOUTUBE = "www.youtube-nocookie.com"
MAPS = "www.google.com"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


# --- helpers ----------------------------------------------------------------------------------


def visit(page: Page, url: str) -> dict[str, Any]:
    """Open ``url`` and return the banner's state once it has asked the server."""
    page.goto(url, wait_until="load")
    state: dict[str, Any] = page.evaluate("window.consentgate.ready")
    return state


def banner_shown(page: Page) -> bool:
    return bool(page.evaluate(f"!!document.querySelector('{BANNER}:not([hidden])')"))


def arm(page: Page) -> None:
    """Start listening for the next ``consentgate:change`` event."""
    page.evaluate(
        "() => { window.__change = new Promise(r => document.addEventListener("
        "'consentgate:change', e => r(e.detail), {once: true})) }"
    )


def changed(page: Page) -> dict[str, Any]:
    """Wait for the event armed by ``arm`` and return its detail."""
    detail: dict[str, Any] = page.evaluate(
        "Promise.race([window.__change, new Promise((_, fail) => setTimeout("
        "() => fail(new Error('no consentgate:change within 10 s')), 10000))])"
    )
    return detail


def choose(page: Page, selector: str) -> dict[str, Any]:
    """Click ``selector`` and return the detail of the ``consentgate:change`` it causes."""
    arm(page)
    page.click(selector)
    return changed(page)


def settle(page: Page) -> None:
    """Give late attempts (preconnects, lazy frames) time to show up."""
    page.wait_for_timeout(400)


def forget(page: Page, trackers: TrackerLog) -> None:
    """Let pending route handlers run (they run only during Playwright calls), then clear."""
    settle(page)
    trackers.clear()


def third_party(trackers: TrackerLog) -> set[str]:
    return trackers.hosts()


def server_state(page: Page) -> dict[str, Any]:
    """Ask ``GET state`` from inside the page (with the page's cookies)."""
    state: dict[str, Any] = page.evaluate("fetch('/_consent/state').then(r => r.json())")
    return state


def records(site: SiteServer) -> int:
    with sqlite3.connect(site.db_path) as db:
        count: int = db.execute("SELECT count(*) FROM records").fetchone()[0]
    return count


def axe(page: Page, selector: str) -> list[dict[str, Any]]:
    """Run axe-core on ``selector`` and return its violations (id, impact, nodes)."""
    if not page.evaluate("!!window.axe"):
        page.add_script_tag(content=axe_source())
    violations: list[dict[str, Any]] = page.evaluate(
        """([selector, tags]) => axe.run(selector, {runOnly: tags}).then(r => r.violations.map(
            v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.html.slice(0, 200))})))""",
        [selector, AXE_TAGS],
    )
    return violations


def focused(page: Page) -> str:
    """Describe the focused element: its action, service, link text or tag."""
    described: str = page.evaluate(
        """() => { const e = document.activeElement;
        return e.getAttribute('data-consentgate-action') || e.getAttribute('data-consentgate')
            || e.id || (e.tagName === 'A' ? 'a:' + e.textContent : e.tagName) }"""
    )
    return described


# --- before and after decisions -----------------------------------------------------------------


def test_no_tracker_is_contacted_before_any_decision(
    page: Page, trackers: TrackerLog, site: SiteServer
) -> None:
    waiting: set[str] = set()
    for path in PAGES:
        state = visit(page, site.url + path)
        settle(page)
        assert state["decided"] is False and banner_shown(page), path
        assert third_party(trackers) == set(), path
        assert resource_hint_hosts(page) == set(), path
        waiting.update(
            page.evaluate(
                "[...document.querySelectorAll('[data-consentgate-service]:not(input)')]"
                ".flatMap(e => e.getAttribute('data-consentgate-service').split(' '))"
            )
        )
    # The pages do carry every vendor's tags: they are held back, not absent.
    assert waiting == set(site.settings().services)
    assert page.evaluate("window.emos3 && window.emos3.loaded") is None


def test_reject_all_keeps_trackers_away_after_reload_and_navigation(
    page: Page, trackers: TrackerLog, site: SiteServer
) -> None:
    visit(page, site.url + "/")
    detail = choose(page, '[data-consentgate-action="reject-all"]')
    assert detail["action"] == "reject-all" and detail["allowed"] == []
    assert not banner_shown(page)
    for path in ["/", *PAGES]:
        state = visit(page, site.url + path)
        settle(page)
        assert state["decided"] is True and not banner_shown(page), path
    assert third_party(trackers) == set()
    assert page.locator("[data-consentgate-placeholder]").count() == 0  # /impressum has none
    visit(page, site.url + "/ueber-uns")
    assert page.locator("[data-consentgate-placeholder]").count() == 2


def _blocked_script_hosts(page: Page) -> list[str]:
    """Return the tracker host each blocked script loads from, in document order."""
    sources: list[str] = page.evaluate(
        "[...document.querySelectorAll('script[data-consentgate-service]')]"
        ".map(s => (s.getAttribute('data-consentgate-src') || '') + ' ' + s.text)"
    )
    order: list[str] = []
    for source in sources:
        found = [h for h in TRACKER_HOSTS if "*" not in h and h in source]
        for host in sorted(found, key=source.index)[:1]:
            if host not in order:
                order.append(host)
    return order


def test_accept_all_runs_blocked_scripts_in_document_order_without_reload(
    page: Page, trackers: TrackerLog, site: SiteServer
) -> None:
    visit(page, site.url + "/")
    expected = _blocked_script_hosts(page)
    assert expected == [GTM, ETRACKER, MATOMO, FACEBOOK]
    page.evaluate("window.__sameDocument = true")
    detail = choose(page, '[data-consentgate-action="accept-all"]')
    assert detail["action"] == "accept-all"
    assert set(detail["allowed"]) == set(site.settings().optional_service_ids)
    for host in (*expected, YOUTUBE):
        trackers.wait_for_host(host, page)
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    script_hosts = [e.host for e in trackers.requests() if e.resource_type == "script"]
    first_seen = list(dict.fromkeys(script_hosts))
    assert first_seen == expected
    # The self-hosted econda library and the page's request ran, in their order.
    page.wait_for_function("window.emos3.loaded === true", timeout=5000)
    assert page.evaluate("window.emos3.stored.length") == 1
    # Google Consent Mode heard about it; the embed's placeholder is gone.
    updates = page.evaluate(
        "dataLayer.filter(a => a[0] === 'consent' && a[1] === 'update').map(a => a[2])"
    )
    assert updates and updates[-1]["ad_storage"] == "granted"
    assert page.locator("[data-consentgate-placeholder]").count() == 0
    assert page.locator("iframe[src*='youtube-nocookie.com']").is_visible()


EVENTS = "window._paq.filter(c => c[0] === 'trackEvent').length"


def test_a_hand_marked_script_runs_exactly_once(
    page: Page, trackers: TrackerLog, site: SiteServer
) -> None:
    visit(page, site.url + "/strom")
    assert page.evaluate("window._paq") is None
    choose(page, '[data-consentgate-action="accept-all"]')
    assert page.evaluate(EVENTS) == 1  # switched on by the banner, in place
    visit(page, site.url + "/strom")
    settle(page)
    assert page.evaluate(EVENTS) == 1  # switched on by the server; not run a second time


def _open_details(page: Page, category: str) -> None:
    summary = page.locator(f'[aria-labelledby="cg-c-{category}-l"] summary')
    summary.click()


def test_a_custom_choice_loads_only_the_chosen_service(
    page: Page, trackers: TrackerLog, site: SiteServer
) -> None:
    visit(page, site.url + "/")
    page.click('[data-consentgate-action="settings"]')
    assert page.locator("input[data-consentgate-service]:checked:not([disabled])").count() == 0
    _open_details(page, "statistics")
    page.check('input[data-consentgate-service="matomo"]')
    statistics = page.locator('input[data-consentgate-category="statistics"]')
    assert statistics.evaluate("e => e.indeterminate") is True
    assert choose(page, '[data-consentgate-action="save"]')["allowed"] == ["matomo"]
    trackers.wait_for_host(MATOMO, page)
    settle(page)
    assert third_party(trackers) == {MATOMO}
    visit(page, site.url + "/strom")
    settle(page)
    assert third_party(trackers) == {MATOMO}
    # The hand-marked event ran once: the server switched it on, the banner left it alone.
    assert page.evaluate(EVENTS) == 1


def test_withdrawal_reloads_and_blocks_again(
    page: Page, trackers: TrackerLog, site: SiteServer
) -> None:
    visit(page, site.url + "/")
    choose(page, '[data-consentgate-action="accept-all"]')
    trackers.wait_for_host(FACEBOOK, page)
    # Take back marketing only: the page reloads and only statistics and media still load.
    page.click("[data-consentgate-open]")
    assert page.locator(".cg-l2 .cg-note").is_visible()  # "the page reloads" notice
    page.uncheck('input[data-consentgate-category="marketing"]')
    forget(page, trackers)
    with page.expect_navigation():
        page.click('[data-consentgate-action="save"]')
    page.evaluate("window.consentgate.ready")
    trackers.wait_for_host(MATOMO, page)
    settle(page)
    assert FACEBOOK not in third_party(trackers) and GTM not in third_party(trackers)
    assert ETRACKER in third_party(trackers)
    # Then everything: nothing is contacted any more.
    page.click("[data-consentgate-open]")
    forget(page, trackers)
    with page.expect_navigation():
        page.click('[data-consentgate-action="reject-all"]')
    page.evaluate("window.consentgate.ready")
    settle(page)
    assert third_party(trackers) == set()
    assert server_state(page)["granted"] == []


# --- two-click placeholders -------------------------------------------------------------------


def test_load_once_loads_only_that_embed_and_records_nothing(
    page: Page, trackers: TrackerLog, site: SiteServer
) -> None:
    visit(page, site.url + "/ueber-uns")
    before = records(site)
    page.keyboard.press("Escape")  # close the banner without deciding
    placeholders = page.locator('[data-consentgate-placeholder="youtube"]')
    assert placeholders.count() == 2
    assert placeholders.first.locator('[data-consentgate-action="load-once"]').inner_text() == (
        "Video abspielen"
    )
    placeholders.first.locator('[data-consentgate-action="load-once"]').click()
    trackers.wait_for_host(YOUTUBE, page)
    settle(page)
    assert trackers.urls() == [f"https://{YOUTUBE}/embed/Waermepumpe"]
    assert placeholders.count() == 1
    assert focused(page) == "IFRAME"
    assert server_state(page)["decided"] is False and records(site) == before
    forget(page, trackers)
    visit(page, site.url + "/ueber-uns")
    settle(page)
    assert third_party(trackers) == set() and placeholders.count() == 2


def test_allow_always_loads_every_embed_of_the_service_and_survives_reload(
    page: Page, trackers: TrackerLog, site: SiteServer
) -> None:
    visit(page, site.url + "/ueber-uns")
    arm(page)
    page.locator('[data-consentgate-action="allow-always"]').nth(1).click()
    assert changed(page)["allowed"] == ["youtube"]
    assert page.evaluate("document.activeElement.src").endswith("/embed/Wasserwerk")
    for video in ("Waermepumpe", "Wasserwerk"):
        page.wait_for_selector(f"iframe[src='https://{YOUTUBE}/embed/{video}']:visible")
    assert page.locator("[data-consentgate-placeholder]").count() == 0
    forget(page, trackers)
    visit(page, site.url + "/ueber-uns")
    settle(page)
    assert {u.rsplit("/", 1)[1] for u in trackers.urls()} == {"Waermepumpe", "Wasserwerk"}
    assert page.locator("[data-consentgate-placeholder]").count() == 0
    forget(page, trackers)
    visit(page, site.url + "/kundencenter")  # the map still waits for its own click
    settle(page)
    assert MAPS not in third_party(trackers)
    assert page.locator('[data-consentgate-placeholder="google_maps"]').count() == 1


# --- keyboard, focus and accessibility -----------------------------------------------------------


def test_keyboard_only_walkthrough(page: Page, trackers: TrackerLog, site: SiteServer) -> None:
    visit(page, site.url + "/")
    assert focused(page) == "banner", "focus moves into the banner when it opens"
    order = []
    for _ in range(5):
        page.keyboard.press("Tab")
        order.append(focused(page))
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none", f"no visible focus on {order[-1]}"
    assert order == [
        "a:Datenschutzerklärung",
        "a:Impressum",
        "accept-all",
        "reject-all",
        "settings",
    ]
    page.keyboard.press("Enter")
    assert focused(page) == "cg-c-statistics"
    page.keyboard.press("Space")
    statistics = page.eval_on_selector_all(
        "input[data-consentgate-service]:checked:not([disabled])",
        "els => els.map(e => e.getAttribute('data-consentgate-service')).sort()",
    )
    assert statistics == ["econda", "etracker", "matomo"]
    for _ in range(40):
        page.keyboard.press("Tab")
        if focused(page) == "save":
            break
    else:
        pytest.fail("the save button is not reachable with Tab")
    arm(page)
    page.keyboard.press("Enter")
    assert sorted(changed(page)["allowed"]) == statistics
    # The footer link opens the settings; Escape closes them, returns focus, records nothing.
    before = records(site)
    page.focus("[data-consentgate-open]")
    page.keyboard.press("Enter")
    assert banner_shown(page) and page.evaluate(
        f"document.querySelector('{BANNER}').contains(document.activeElement)"
    )
    page.keyboard.press("Escape")
    assert not banner_shown(page)
    assert page.evaluate("document.activeElement.hasAttribute('data-consentgate-open')")
    assert records(site) == before


def test_a_changed_configuration_asks_again_and_records_nothing(
    page: Page, trackers: TrackerLog, site: SiteServer
) -> None:
    visit(page, site.url + "/")
    before = records(site)
    page.evaluate("consentgate.state.fingerprint = '0'.repeat(64)")  # as if the texts changed
    page.click('[data-consentgate-action="accept-all"]')
    error = page.locator(f"{BANNER} .cg-error")
    error.wait_for(state="visible")
    assert "nicht gespeichert" in error.inner_text()
    assert banner_shown(page) and records(site) == before
    assert server_state(page)["decided"] is False
    settle(page)
    assert third_party(trackers) == set()
    arm(page)
    page.click('[data-consentgate-action="reject-all"]')  # the fresh fingerprint is accepted
    assert changed(page)["action"] == "reject-all" and records(site) == before + 1


def test_escape_and_ignoring_are_no_consent(
    page: Page, trackers: TrackerLog, site: SiteServer
) -> None:
    visit(page, site.url + "/strom")
    page.keyboard.press("Escape")
    assert not banner_shown(page)
    settle(page)
    assert server_state(page)["decided"] is False
    assert third_party(trackers) == set()
    visit(page, site.url + "/strom")
    assert banner_shown(page), "the question comes back on the next page"


@pytest.mark.parametrize(
    "viewport",
    [
        pytest.param({"width": 1280, "height": 800}, id="desktop"),
        pytest.param({"width": 320, "height": 568}, id="320px"),
    ],
)
def test_axe_finds_no_violations_in_either_layer(
    new_context: NewContext, site: SiteServer, viewport: dict[str, int]
) -> None:
    context, _ = new_context(persistent=False, viewport=viewport)
    page = context.new_page()
    visit(page, site.url + "/")
    name = f"banner-{viewport['width']}px"
    page.screenshot(path=artifacts_dir() / f"{name}-layer1.png")
    assert axe(page, BANNER) == []
    page.click('[data-consentgate-action="settings"]')
    for summary in page.locator(f"{BANNER} summary").all():
        summary.click()
    page.screenshot(path=artifacts_dir() / f"{name}-layer2.png")
    assert axe(page, BANNER) == []
    visit(page, site.url + "/ueber-uns")
    page.keyboard.press("Escape")
    assert axe(page, "[data-consentgate-placeholder]") == []


@pytest.mark.parametrize(
    ("viewport", "scale"),
    [
        pytest.param({"width": 320, "height": 568}, 1, id="320px"),
        pytest.param({"width": 640, "height": 400}, 2, id="1280px-at-200-percent"),
    ],
)
def test_banner_is_usable_at_320px_and_200_percent_zoom(
    new_context: NewContext, site: SiteServer, viewport: dict[str, int], scale: int
) -> None:
    context, _ = new_context(
        persistent=False, viewport=viewport, device_scale_factor=scale, reduced_motion="reduce"
    )
    page = context.new_page()
    visit(page, site.url + "/")
    for layer in (1, 2):
        if layer == 2:
            page.click('[data-consentgate-action="settings"]')
        box = page.locator(BANNER).bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
        assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"]
        width = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
        assert width[0] <= width[1], "horizontal scrolling"
        for button in page.locator(f"{BANNER} .cg-btn:visible").all():
            button.scroll_into_view_if_needed()
            rect = button.bounding_box()
            assert rect is not None and rect["y"] + rect["height"] <= viewport["height"]
    assert choose(page, '[data-consentgate-action="reject-all"]')["action"] == "reject-all"


def test_the_banner_shifts_nothing_and_respects_reduced_motion(
    new_context: NewContext, site: SiteServer
) -> None:
    context, _ = new_context(persistent=False)
    page = context.new_page()
    page.add_init_script(
        "window.__shift = 0; new PerformanceObserver(l => l.getEntries().forEach("
        "e => { window.__shift += e.value })).observe({type: 'layout-shift', buffered: true})"
    )
    visit(page, site.url + "/")
    page.wait_for_timeout(300)
    assert banner_shown(page)
    assert page.evaluate("window.__shift") == 0
    assert page.eval_on_selector(BANNER, "e => getComputedStyle(e).animationName") == "cg-in"
    calm, _ = new_context(persistent=False, reduced_motion="reduce")
    calm_page = calm.new_page()
    visit(calm_page, site.url + "/")
    assert calm_page.eval_on_selector(BANNER, "e => getComputedStyle(e).animationName") == "none"


# --- language, signals, revisions, texts --------------------------------------------------------


def test_english_visitors_get_the_english_banner(new_context: NewContext, site: SiteServer) -> None:
    context, _ = new_context("en-GB", persistent=False)
    page = context.new_page()
    visit(page, site.url + "/")
    assert page.locator(BANNER).get_attribute("lang") == "en"
    assert page.locator(f"{BANNER} h2").inner_text() == "Privacy settings"
    labels = page.locator(f"{BANNER} .cg-btn:visible").all_inner_texts()
    assert labels == ["Accept all", "Reject all", "Settings"]


def test_gpc_is_shown_and_keeps_marketing_off_even_after_accept_all(
    new_context: NewContext, site: SiteServer
) -> None:
    context, trackers = new_context(extra_http_headers={"Sec-GPC": "1"})
    page = context.pages[0]
    visit(page, site.url + "/")
    notice = page.locator(f"{BANNER} .cg-note").first.inner_text()
    assert "GPC" in notice and "Meta-Pixel" in notice
    arm(page)
    page.click('[data-consentgate-action="accept-all"]')
    assert "facebook_pixel" not in changed(page)["allowed"]
    trackers.wait_for_host(MATOMO, page)
    settle(page)
    assert FACEBOOK not in third_party(trackers)
    visit(page, site.url + "/")
    settle(page)
    assert FACEBOOK not in third_party(trackers)


def test_a_new_revision_asks_again(page: Page, trackers: TrackerLog, site: SiteServer) -> None:
    visit(page, site.url + "/")
    choose(page, '[data-consentgate-action="accept-all"]')
    trackers.wait_for_host(YOUTUBE, page)
    forget(page, trackers)
    revised = SiteServer(overrides={"revision": 2})
    revised.secret_key = site.secret_key  # same keys: only the revision differs
    with revised:
        state = visit(page, revised.url + "/")  # cookies are per host, not per port
        settle(page)
        assert state["decided"] is False and banner_shown(page)
        assert third_party(trackers) == set()


def test_operator_texts_are_shown_as_text(new_context: NewContext) -> None:
    hostile = "<img src=x onerror=window.pwned=1>"
    extra = f"[texts.de]\ntitle = {json.dumps(hostile)}\n"
    with SiteServer(extra_toml=extra) as server:
        context, _ = new_context(persistent=False)
        page = context.new_page()
        visit(page, server.url + "/")
        assert page.locator(f"{BANNER} h2").inner_text() == hostile
        assert page.locator(f"{BANNER} img").count() == 0
        assert page.evaluate("window.pwned") is None


def test_javascript_api(page: Page, trackers: TrackerLog, site: SiteServer) -> None:
    visit(page, site.url + "/")
    assert page.evaluate("consentgate.allows('matomo')") is False
    receipt = page.evaluate("consentgate.save({matomo: true})")
    assert receipt["granted"] == ["matomo"] and receipt["action"] == "custom"
    assert "consent_id" not in receipt and receipt["hash"]
    assert page.evaluate("consentgate.allows('matomo')") is True
    trackers.wait_for_host(MATOMO, page)
    page.evaluate("consentgate.open()")
    assert banner_shown(page)
    assert page.locator('input[data-consentgate-service="matomo"]').is_checked()
    page.evaluate("consentgate.close()")
    assert not banner_shown(page)
