"""Fixtures for real-browser tests: the example site, Chromium and a record of every tracker."""

# Two things about Chromium shape these fixtures:
#
# - ``browser.new_context()`` makes an off-the-record (incognito) context, and Chromium ignores
#   ``<link rel=preconnect>`` and ``dns-prefetch`` there ("Disabled for off-the-record. Policy
#   choice", chrome/browser/predictors/loading_predictor_config.cc). A visitor's normal profile
#   does preconnect, so ``context`` is a persistent context in a fresh profile directory: one
#   browser process per test (about half a second), but preconnects reach the recording proxy.
# - The sync Playwright API leaves its event loop set as the thread's running loop between
#   calls (``asyncio._set_running_loop`` in ``playwright/_impl/_greenlets.py``). Any asyncio
#   test run later in the session, here or in another folder, then fails with "Cannot run the
#   event loop while another loop is running". ``_LoopParking`` hides that loop whenever no
#   browser test runs, and shows it again around each sync test that uses Playwright.

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

# The repository root must be on sys.path before tests.widgets.browser can be imported
# (--import-mode=importlib does not put it there; see tests/example_site).
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.widgets.browser import (  # noqa: E402
    PageServer,
    RecordingProxy,
    SiteServer,
    TrackerLog,
    artifacts_dir,
)

#: Loopback never goes through the proxy. Playwright proxies loopback too unless the bypass
#: list names a loopback host, so it is spelled out.
PROXY_BYPASS = "127.0.0.1,localhost,[::1]"
LOCALE = "de-DE"

NewContext = Callable[..., tuple[BrowserContext, TrackerLog]]


class _LoopParking:
    """Hides sync Playwright's event loop from asyncio while no browser test runs."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.shown = False

    def park(self) -> None:
        """Remember Playwright's loop (the thread's running loop) and unset it."""
        loop = asyncio.events._get_running_loop()
        if loop is not None:
            self.loop = loop
        asyncio.events._set_running_loop(None)
        self.shown = False

    def show(self) -> None:
        """Make Playwright's loop the running loop again, so sync calls work."""
        if self.loop is not None and not self.loop.is_closed():
            asyncio.events._set_running_loop(self.loop)
        self.shown = True

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Show the loop for the block, then hide it again unless it was shown before."""
        was_shown = self.shown
        self.show()
        try:
            yield
        finally:
            if not was_shown:
                self.park()


_PARKING = _LoopParking()


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "Chromium is not installed: the browser tests need Debian's chromium package "
            "(`apt-get install -y chromium`, which `make test` runs when it is root)",
            pytrace=False,
        )
    return path


@pytest.fixture(autouse=True)
def _playwright_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    """Show Playwright's loop during each sync test that uses it, and hide it afterwards."""
    if "playwright" not in request.fixturenames or inspect.iscoroutinefunction(request.function):
        yield
        return
    with _PARKING.active():
        yield


@pytest.fixture(scope="session")
def proxy() -> Iterator[RecordingProxy]:
    """The proxy Chromium sends all non-loopback traffic to; it records hosts and answers 502."""
    with RecordingProxy() as running:
        yield running


@pytest.fixture(scope="session")
def site() -> Iterator[SiteServer]:
    """The example site under uvicorn, with its own settings copy and SQLite ledger."""
    with SiteServer() as running:
        yield running


@pytest.fixture(scope="session")
def page_server() -> Iterator[PageServer]:
    """A loopback server for pages a test writes itself (``page_server.add(path, html)``)."""
    with PageServer() as running:
        yield running


@pytest.fixture(scope="session")
def launch_options(proxy: RecordingProxy) -> dict[str, Any]:
    """Keyword arguments for ``chromium.launch`` and ``launch_persistent_context``."""
    return {
        "executable_path": _chromium(),
        "headless": True,
        "proxy": {"server": proxy.url, "bypass": PROXY_BYPASS},
    }


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """The sync Playwright driver, for the whole session."""
    with _PARKING.active():
        manager = sync_playwright().start()
    try:
        yield manager
    finally:
        with _PARKING.active():
            manager.stop()
        _PARKING.loop = None


@pytest.fixture(scope="session")
def browser(playwright: Playwright, launch_options: dict[str, Any]) -> Iterator[Browser]:
    """Headless Debian Chromium behind the recording proxy; its contexts are off the record."""
    with _PARKING.active():
        launched = playwright.chromium.launch(**launch_options)
    try:
        yield launched
    finally:
        with _PARKING.active():
            launched.close()


@pytest.fixture
def new_context(
    playwright: Playwright,
    launch_options: dict[str, Any],
    proxy: RecordingProxy,
    request: pytest.FixtureRequest,
) -> Iterator[NewContext]:
    """Return a factory ``new_context(locale, *, persistent=True, **options)`` of contexts."""
    # Persistent contexts (the default) get a fresh profile and a browser process of their own
    # and do preconnect; ``persistent=False`` ones come from the shared ``browser`` and do not.
    # Every context made is closed after the test. Each returns with its own TrackerLog.
    made: list[tuple[BrowserContext, tempfile.TemporaryDirectory[str] | None]] = []

    def make(
        locale: str = LOCALE, *, persistent: bool = True, **options: Any
    ) -> tuple[BrowserContext, TrackerLog]:
        log = TrackerLog(proxy)  # before the launch: the proxy hits of the launch count too
        if persistent:
            profile = tempfile.TemporaryDirectory(
                prefix="consentgate-profile-", ignore_cleanup_errors=True
            )
            context = playwright.chromium.launch_persistent_context(
                profile.name, locale=locale, **launch_options, **options
            )
            made.append((context, profile))
        else:
            shared: Browser = request.getfixturevalue("browser")
            context = shared.new_context(locale=locale, **options)
            made.append((context, None))
        context.route("**/*", log.handle)
        return context, log

    yield make
    for context, profile in reversed(made):
        context.close()
        if profile is not None:
            profile.cleanup()


@pytest.fixture
def context_and_trackers(new_context: NewContext) -> tuple[BrowserContext, TrackerLog]:
    """A fresh persistent context in German and the log of its third-party requests."""
    return new_context()


@pytest.fixture
def context(context_and_trackers: tuple[BrowserContext, TrackerLog]) -> BrowserContext:
    """A fresh persistent context (locale de-DE) whose third-party requests get stubs."""
    return context_and_trackers[0]


@pytest.fixture
def trackers(context_and_trackers: tuple[BrowserContext, TrackerLog]) -> TrackerLog:
    """Every non-loopback host ``context`` tried: stubbed requests and proxy hits, in order."""
    return context_and_trackers[1]


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """A page of ``context``; a failing test leaves a screenshot in test-artifacts/."""
    # A persistent context opens with one blank page; use it rather than adding a second.
    return context.pages[0] if context.pages else context.new_page()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Save a screenshot of ``page`` when a test using it fails."""
    report = yield
    page = getattr(item, "funcargs", {}).get("page")
    if report.when == "call" and report.failed and isinstance(page, Page):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)[-150:]
        path = artifacts_dir() / f"{name}.png"
        try:
            page.screenshot(path=path, full_page=True)
        except Exception as exc:  # the test's own failure matters more
            report.sections.append(("screenshot", f"no screenshot: {exc}"))
        else:
            report.sections.append(("screenshot", str(path)))
    return report
