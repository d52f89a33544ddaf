"""The browser harness itself: it must see every third-party contact, and nothing else."""

from __future__ import annotations

import os
import urllib.request

from playwright.sync_api import Page

from tests.widgets.browser import (
    AXE_VERSION,
    KEYS_ENV,
    TRACKER_HOSTS,
    PageServer,
    SiteServer,
    TrackerLog,
    axe_source,
    is_tracker_host,
    resource_hint_hosts,
)

GTM = "https://www.googletagmanager.com/gtm.js?id=GTM-X"


def html(head: str = "", body: str = "<p>Inhalt</p>") -> str:
    """Return a small, valid German page."""
    return (
        '<!doctype html><html lang="de"><head><meta charset="utf-8"><title>Test</title>'
        f"{head}</head><body><main><h1>Test</h1>{body}</main></body></html>"
    )


def test_tracker_hosts_come_from_the_example_settings() -> None:
    for host in (
        "www.googletagmanager.com",
        "connect.facebook.net",
        "www.youtube-nocookie.com",
        "www.google.com",
        "code.etracker.com",
        "www.econda-monitor.de",
        "statistik.stadtwerke-musterstadt.de",
    ):
        assert host in TRACKER_HOSTS, host
    assert is_tracker_host("i.ytimg.com")  # from "*.ytimg.com"
    assert not is_tracker_host("127.0.0.1")
    assert not is_tracker_host("example.org")


def test_a_third_party_script_is_recorded_and_stubbed(
    page: Page, trackers: TrackerLog, page_server: PageServer
) -> None:
    url = page_server.add(
        "/script.html",
        html(
            f'<script src="{GTM}" onload="window.stubLoaded = true"></script>',
            '<img id="pixel" alt="" src="https://www.facebook.com/tr?id=1&amp;ev=PageView">'
            '<iframe title="Video" src="https://www.youtube-nocookie.com/embed/x"></iframe>',
        ),
    )
    page.goto(url, wait_until="load")
    assert trackers.script_urls() == [GTM]
    assert page.evaluate("window.stubLoaded") is True  # the stub is a script that loads
    assert page.evaluate("document.getElementById('pixel').naturalWidth") == 1
    kinds = {e.host: e.resource_type for e in trackers.requests() if e.via == "route"}
    assert kinds == {
        "www.googletagmanager.com": "script",
        "www.facebook.com": "image",
        "www.youtube-nocookie.com": "document",
    }
    seqs = [e.seq for e in trackers.requests()]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    trackers.clear()
    assert trackers.requests() == []


def test_a_preconnect_reaches_the_proxy(
    page: Page, trackers: TrackerLog, page_server: PageServer
) -> None:
    url = page_server.add(
        "/hints.html",
        html(
            '<link rel="preconnect" href="https://www.googletagmanager.com">'
            '<link rel="dns-prefetch" href="//connect.facebook.net">'
        ),
    )
    page.goto(url)
    hit = trackers.wait_for_host("www.googletagmanager.com", page)
    assert (hit.via, hit.method, hit.resource_type) == ("proxy", "CONNECT", "connect")
    # Through a proxy Chromium resolves nothing itself: dns-prefetch shows only in the DOM.
    assert resource_hint_hosts(page) == {"www.googletagmanager.com", "connect.facebook.net"}


def test_a_page_without_third_parties_records_nothing(
    page: Page, trackers: TrackerLog, page_server: PageServer
) -> None:
    page_server.add("/local.css", "main { color: #222; }", "text/css")
    page_server.add("/local.js", "window.localLoaded = true;", "text/javascript")
    url = page_server.add(
        "/local.html",
        html(
            '<link rel="stylesheet" href="/local.css"><script src="/local.js"></script>'
            '<link rel="preconnect" href="http://127.0.0.1:9">',
            "<script>fetch('/local.js?fetched').then(r => { window.fetched = r.ok; })</script>",
        ),
    )
    page.goto(url, wait_until="load")
    page.wait_for_function("window.fetched === true")
    page.wait_for_timeout(1000)  # time for late requests and preconnects
    assert page.evaluate("window.localLoaded") is True
    assert trackers.requests() == []


def test_the_example_site_runs_under_uvicorn(page: Page, site: SiteServer) -> None:
    response = page.goto(site.url + "/")
    assert response is not None and response.status == 200
    assert "Stadtwerke" in page.title()
    assert site.settings().store_url == f"sqlite:///{site.db_path}"


def test_a_second_site_can_run_another_revision() -> None:
    before = os.environ.get(KEYS_ENV)
    with SiteServer(overrides={"revision": 2}) as second:
        assert second.settings().revision == 2
        with urllib.request.urlopen(second.url + "/", timeout=10) as response:  # noqa: S310
            assert response.status == 200
        directory = second.directory
        assert directory is not None and directory.is_dir()
    assert not directory.exists()
    assert os.environ.get(KEYS_ENV) == before


def test_axe_core_runs_and_finds_a_missing_alt(page: Page, page_server: PageServer) -> None:
    source = axe_source()
    assert "axe" in source and AXE_VERSION in source[:500]
    page.goto(page_server.add("/axe.html", html(body='<img src="/none.png">')))
    page.add_script_tag(content=source)
    result = page.evaluate(
        "axe.run().then(r => ({violations: r.violations.map(v => v.id), passes: r.passes.length}))"
    )
    assert result["passes"] > 0
    assert "image-alt" in result["violations"]
