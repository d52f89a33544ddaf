"""What the injected banner costs a page in a real browser: paint, load, and when it shows.

The baseline runs in the same run: the example site is served twice by uvicorn (threads,
loopback), once as usual (A: ``banner.css`` and ``banner.js`` injected after ``<head>``) and once
with ``[blocking] inject_assets = false`` (B: the trackers are still blocked server-side, so the
pages differ only by the two banner tags). Headless Debian Chromium, driven by Playwright, loads
``/`` in a fresh context per run (empty cache), A and B interleaved (ABBA), then opens ``/`` again
in a new tab of the same context (the repeat visit: the banner files, ``?v=``-versioned and
immutable, come from the cache). Times are read inside the page, relative to navigation start:
first-contentful-paint, DOMContentLoaded and load (the events' start), and the moment the
banner ``[data-consentgate="banner"]`` first is in the DOM and not ``hidden``, recorded by a
MutationObserver from an init script (installed in both variants), so no round-trip to Python
is counted.

Nothing leaves the machine: Chromium sends every non-loopback request to a loopback proxy that
answers 502 and records the host (``RecordingProxy`` of the browser tests). ``context.route``
is not used for that by default, because any route switches Chromium's HTTP cache off
(Playwright sends ``Network.setCacheDisabled``), which would make the repeat visit download the
banner again, and it pauses every request (Fetch domain) until Playwright lets it go;
``--route`` shows that.
Run: ``python -m bench.banner [--runs N] [--route]``; needs Chromium (``apt-get install
chromium``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, Route, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests.widgets.browser lives in the repository, not the package
    sys.path.insert(0, str(ROOT))

from consentgate.widgets import BannerAssets  # noqa: E402
from tests.widgets.browser import (  # noqa: E402
    BROWSER_SERVICE_HOSTS,
    RecordingProxy,
    SiteServer,
)

RUNS = 20
#: Each variant is loaded this often before measuring (cold server, first renderer process).
WARMUP_RUNS = 2
LOCALE = "de-DE"
#: Loopback never goes through the proxy (Playwright would proxy it unless a loopback host is
#: named in the bypass list).
PROXY_BYPASS = "127.0.0.1,localhost,[::1]"
#: With ``--route``: every URL that is not on loopback is aborted.
NOT_LOOPBACK = re.compile(r"^(?!https?://(?:127\.0\.0\.1|localhost|\[::1\])[:/])")
#: How long to wait for the first paint and the banner after ``load``.
READY_TIMEOUT_MS = 15_000
NO_ASSETS_TOML = "[blocking]\ninject_assets = false"

#: Records in ``window.__cgBannerVisible`` when the banner first is in the DOM and not hidden.
OBSERVER_JS = """(() => {
  const seen = () => {
    if (window.__cgBannerVisible !== undefined) return true
    const el = document.querySelector('[data-consentgate="banner"]')
    if (!el || el.hidden) return false
    window.__cgBannerVisible = performance.now()
    return true
  }
  const observer = new MutationObserver(() => { if (seen()) observer.disconnect() })
  observer.observe(document, {
    childList: true, subtree: true, attributes: true, attributeFilter: ['hidden']
  })
})()"""

#: True once first-contentful-paint exists and, if one is expected, the banner was shown.
READY_JS = """(banner) =>
  performance.getEntriesByType('paint').some((e) => e.name === 'first-contentful-paint')
  && (!banner || window.__cgBannerVisible !== undefined)"""

#: The numbers of one visit, in ms from navigation start, and what the page loaded.
METRICS_JS = """(prefix) => {
  const nav = performance.getEntriesByType('navigation')[0]
  const fcp = performance.getEntriesByType('paint')
    .find((e) => e.name === 'first-contentful-paint')
  const files = performance.getEntriesByType('resource').filter((e) => {
    const path = new URL(e.name).pathname
    return path === prefix + '/banner.js' || path === prefix + '/banner.css'
  })
  return {
    fcp: fcp ? fcp.startTime : null,
    dcl: nav.domContentLoadedEventStart,
    load: nav.loadEventStart,
    banner: window.__cgBannerVisible === undefined ? null : window.__cgBannerVisible,
    injected: document.querySelector('[data-consentgate="script"]') !== null,
    files: files.length,
    cached: files.filter((e) => e.transferSize === 0).length
  }
}"""


@dataclass(frozen=True, slots=True)
class Visit:
    """One page load: times in ms from navigation start, and the banner files it loaded."""

    fcp: float
    dcl: float
    load: float
    banner: float | None
    files: int
    cached: int


@dataclass(frozen=True, slots=True)
class Variant:
    """One of the two servers and the visits measured on it."""

    site: SiteServer
    banner: bool
    first: list[Visit]
    repeat: list[Visit]


def visit(page: Page, url: str, prefix: str, banner: bool) -> Visit:
    """Load ``url`` in ``page``, wait for the first paint (and the banner); return the numbers."""
    page.goto(url, wait_until="load")
    page.wait_for_function(READY_JS, arg=banner, timeout=READY_TIMEOUT_MS)
    data: dict[str, Any] = page.evaluate(METRICS_JS, prefix)
    if data["fcp"] is None:
        raise RuntimeError(f"{url}: no first-contentful-paint entry")
    if data["injected"] != banner:
        raise RuntimeError(f"{url}: banner tags {'missing' if banner else 'present'}")
    return Visit(
        fcp=float(data["fcp"]),
        dcl=float(data["dcl"]),
        load=float(data["load"]),
        banner=None if data["banner"] is None else float(data["banner"]),
        files=int(data["files"]),
        cached=int(data["cached"]),
    )


def run_once(browser: Browser, variant: Variant, prefix: str, route: bool) -> tuple[Visit, Visit]:
    """A fresh context: the first visit to ``/``, then a repeat visit in a new tab."""
    context = browser.new_context(locale=LOCALE)
    try:
        context.add_init_script(script=OBSERVER_JS)
        if route:
            context.route(NOT_LOOPBACK, _abort)
        url = variant.site.url + "/"
        page = context.new_page()
        first = visit(page, url, prefix, variant.banner)
        page.close()
        page = context.new_page()
        repeat = visit(page, url, prefix, variant.banner)
        return first, repeat
    finally:
        context.close()


def _abort(route: Route) -> None:
    route.abort()


def measure(
    browser: Browser, variants: Sequence[Variant], prefix: str, runs: int, route: bool
) -> None:
    """Warm up, then fill the variants' visits, interleaved ABBA."""
    for _ in range(WARMUP_RUNS):
        for variant in variants:
            run_once(browser, variant, prefix, route)
    for i in range(runs):
        for variant in variants if i % 2 == 0 else reversed(variants):
            first, repeat = run_once(browser, variant, prefix, route)
            variant.first.append(first)
            variant.repeat.append(repeat)


def p90(values: Sequence[float]) -> float:
    """Return the 90th percentile (inclusive method; the value itself for one value)."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, int]:
    """Compare run i of A with run i of B (measured next to each other).

    Returns the median of the ratios a/b, the median of the differences a - b and in how
    many runs A took longer than B.
    """
    pairs = list(zip(a, b, strict=True))
    return (
        statistics.median(x / y for x, y in pairs),
        statistics.median(x - y for x, y in pairs),
        sum(x > y for x, y in pairs),
    )


@contextmanager
def servers() -> Iterator[tuple[SiteServer, SiteServer]]:
    """The example site with the banner (A) and without the banner tags (B)."""
    with ExitStack() as stack:
        banner = stack.enter_context(SiteServer())
        baseline = stack.enter_context(SiteServer(extra_toml=NO_ASSETS_TOML))
        yield banner, baseline


def report(variants: Sequence[Variant], header: str, blocked_hosts: set[str]) -> None:
    """Print the table."""
    a, b = variants
    assets = BannerAssets().files
    sizes = ", ".join(
        f"{name} {len(assets[name].gzipped)} B gzip ({len(assets[name].content)} B)"
        for name in ("banner.js", "banner.css")
    )
    print(header)
    print(f"  served: {sizes}")
    columns = f"{'A median':>9}{'p90':>7}{'B median':>10}{'p90':>7}{'A/B':>7}{'A-B':>8}  A slower"
    print(f"  {'ms from navigation start':<30}{columns}")
    rows: list[tuple[str, Callable[[Visit], float], bool]] = [
        ("first visit  FCP", lambda v: v.fcp, False),
        ("first visit  DOMContentLoaded", lambda v: v.dcl, False),
        ("first visit  load", lambda v: v.load, False),
        ("repeat visit FCP", lambda v: v.fcp, True),
        ("repeat visit DOMContentLoaded", lambda v: v.dcl, True),
    ]
    for label, pick, repeat in rows:
        xs = [pick(v) for v in (a.repeat if repeat else a.first)]
        ys = [pick(v) for v in (b.repeat if repeat else b.first)]
        ratio, difference, slower = paired(xs, ys)
        print(
            f"  {label:<30}{statistics.median(xs):9.1f}{p90(xs):7.1f}"
            f"{statistics.median(ys):10.1f}{p90(ys):7.1f}{ratio:7.2f}{difference:+8.1f}"
            f"  {slower}/{len(xs)}"
        )
    for label, visits in (("first visit ", a.first), ("repeat visit", a.repeat)):
        shown = [v.banner for v in visits if v.banner is not None]
        after = [v.banner - v.fcp for v in visits if v.banner is not None]
        print(
            f"  {label + ' banner visible':<30}{statistics.median(shown):9.1f}{p90(shown):7.1f}"
            f"    median {statistics.median(after):+.1f} ms after A's FCP"
        )
    cached = sum(v.cached for v in a.repeat)
    files = sum(v.files for v in a.repeat)
    print(f"  repeat visits: {cached} of {files} banner file loads came from the browser cache")
    if blocked_hosts:
        print(f"  non-loopback requests answered 502: {', '.join(sorted(blocked_hosts))}")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the browser benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m bench.banner", description=__doc__)
    parser.add_argument("--runs", type=int, default=RUNS, help="fresh contexts per variant")
    parser.add_argument(
        "--route",
        action="store_true",
        help="also abort non-loopback requests with context.route (switches the cache off)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    chromium = shutil.which("chromium")
    if chromium is None:
        print("banner in the browser: `chromium` is not on the PATH (apt-get install chromium)")
        return
    started = time.monotonic()
    with servers() as (with_banner, baseline), RecordingProxy() as proxy:
        prefix = with_banner.settings().prefix
        variants = (
            Variant(with_banner, banner=True, first=[], repeat=[]),
            Variant(baseline, banner=False, first=[], repeat=[]),
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium,
                headless=True,
                proxy={"server": proxy.url, "bypass": PROXY_BYPASS},
            )
            try:
                measure(browser, variants, prefix, args.runs, args.route)
                version = browser.version
            finally:
                browser.close()
        blocked = proxy.hosts() - BROWSER_SERVICE_HOSTS
    blocking = "aborted by context.route (HTTP cache off)" if args.route else "to a 502 proxy"
    header = (
        f"banner in the browser: headless Chromium {version}, example site / under uvicorn,\n"
        f"  {args.runs} fresh contexts per variant (ABBA), non-loopback requests "
        f"{blocking}, {time.monotonic() - started:.0f} s\n"
        "  A = banner injected, B = inject_assets = false; A/B and A-B are medians of per-run\n"
        "  ratios and differences, A slower counts runs where A took longer than its B neighbour"
    )
    report(variants, header, blocked)


if __name__ == "__main__":
    main()
