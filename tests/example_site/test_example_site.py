"""The example site: its pages, the vendor snippets on them and the consent status it shows."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp, Message

from consentgate.config import PRESET_IDS, Settings
from consentgate.widgets import Declaration, render_declaration

# pytest runs with --import-mode=importlib, which leaves the repository root off sys.path, and
# example_site is not an installed package (nor may a root conftest.py add it): add it here.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from example_site import pages  # noqa: E402  (needs the sys.path entry above)

SECRET_ENV = "CONSENTGATE_SECRET_KEYS"
PAGES = ["/", "/strom", "/kundencenter", "/ueber-uns", "/datenschutz", "/impressum"]
SERVICE_IDS = list(PRESET_IDS)  # the example enables every preset

# Pieces of each site-wide snippet that survive blocking: consentgate neutralizes a tag by
# changing its type or moving its URL to data-consentgate-src, not by rewriting its content.
SITE_WIDE_SNIPPETS = {
    "google_tag_manager": ["'gtm.start'", "'dataLayer','GTM-ABC1234'"],
    "etracker": ['id="_etLoader"', 'data-secure-code="XyZ123"', "//code.etracker.com/code/e.js"],
    "matomo": [
        "var _paq = window._paq = window._paq || [];",
        'var u="https://statistik.stadtwerke-musterstadt.de/";',
        "_paq.push(['setSiteId', '1']);",
    ],
    "facebook_pixel": [
        "https://connect.facebook.net/en_US/fbevents.js",
        "fbq('init', '1234567890');",
        "fbq('track', 'PageView');",
    ],
    "econda": ["window.emos3 = {", "/js/emos3.js", "window.emos3.send("],
}


@contextlib.asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run the app's ASGI lifespan around the block, as uvicorn does."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

    async def serve() -> None:
        await app(scope, inbox.get, outbox.put)

    task = asyncio.create_task(serve())
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await task


@pytest.fixture
async def client(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``create_app()`` whose consent store lives in a temporary directory."""
    monkeypatch.setenv(SECRET_ENV, "t" * 40)
    monkeypatch.chdir(tmp_path)
    # Imported here, not at the top: importing the module runs create_app() for its
    # module-level `app`, which must see this test's environment and working directory.
    from example_site.app import create_app

    app = create_app()
    transport = httpx.ASGITransport(app=app)
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


def count_h1(html: str) -> int:
    return len(re.findall(r"<h1[\s>]", html))


def status_rows(html: str) -> dict[str, str]:
    """Return service id -> status text from the consent table of the privacy page."""
    rows = re.findall(r'<tr data-service="([a-z_]+)">.*?<td[^>]*>(.*?)</td>', html, flags=re.DOTALL)
    return dict(rows)


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_is_html_with_one_h1(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<html lang="de">' in response.text
    assert count_h1(response.text) == 1


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("service", sorted(SITE_WIDE_SNIPPETS))
async def test_every_page_carries_the_site_wide_snippets(
    client: httpx.AsyncClient, path: str, service: str
) -> None:
    html = (await client.get(path)).text
    for piece in SITE_WIDE_SNIPPETS[service]:
        assert piece in html, f"{service} snippet piece {piece!r} missing on {path}"


async def test_tariff_page_carries_the_google_ads_conversion(client: httpx.AsyncClient) -> None:
    html = (await client.get("/strom")).text
    assert "https://www.googletagmanager.com/gtag/js?id=AW-123456789" in html
    assert "gtag('config', 'AW-123456789');" in html
    assert "gtag('event', 'conversion', {" in html
    assert "Jetzt wechseln" in html


@pytest.mark.parametrize("path", [p for p in PAGES if p != "/strom"])
async def test_google_ads_only_on_the_tariff_page(client: httpx.AsyncClient, path: str) -> None:
    assert "AW-123456789" not in (await client.get(path)).text


async def test_home_page_embeds_the_video(client: httpx.AsyncClient) -> None:
    html = (await client.get("/")).text
    assert "https://www.youtube-nocookie.com/embed/" in html
    assert 'title="So funktioniert unser Ökostrom"' in html


async def test_customer_centre_embeds_the_map(client: httpx.AsyncClient) -> None:
    html = (await client.get("/kundencenter")).text
    assert "https://www.google.com/maps/embed?pb=" in html
    assert 'id="kontakt"' in html


async def test_privacy_page_allows_nothing_before_a_decision(client: httpx.AsyncClient) -> None:
    response = await client.get("/datenschutz")
    assert "Einwilligungsstatus nicht verfügbar" not in response.text
    assert status_rows(response.text) == dict.fromkeys(SERVICE_IDS, "nicht erlaubt")
    assert "no-store" in response.headers["cache-control"]


async def test_privacy_page_shows_a_decision_with_its_consent_id(
    client: httpx.AsyncClient,
) -> None:
    decision = await client.post(
        "/_consent/decision", json={"services": {"matomo": True, "youtube": True}}
    )
    assert decision.status_code == 200
    html = (await client.get("/datenschutz")).text
    assert status_rows(html) == {
        service: "erlaubt" if service in {"matomo", "youtube"} else "nicht erlaubt"
        for service in SERVICE_IDS
    }
    assert f"<code>{decision.json()['consent_id']}</code>" in html


async def test_stylesheet_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/static/site.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")


async def test_unknown_path_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/gibt-es-nicht")
    assert response.status_code == 404
    assert count_h1(response.text) == 1


def test_creates_a_private_demo_secret_when_none_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # setenv first so that monkeypatch restores "unset" after create_app() has set it.
    monkeypatch.setenv(SECRET_ENV, "placeholder")
    monkeypatch.delenv(SECRET_ENV)
    monkeypatch.chdir(tmp_path)
    from example_site.app import create_app

    create_app()
    secret = tmp_path / ".demo-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert os.environ[SECRET_ENV] == secret.read_text(encoding="ascii").strip()
    assert len(os.environ[SECRET_ENV]) >= 32


def test_reuses_an_existing_demo_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(SECRET_ENV, "placeholder")
    monkeypatch.delenv(SECRET_ENV)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".demo-secret").write_text("k" * 43 + "\n", encoding="ascii")
    from example_site.app import create_app

    create_app()
    assert os.environ[SECRET_ENV] == "k" * 43


async def test_privacy_page_embeds_the_generated_declaration(client: httpx.AsyncClient) -> None:
    """Cookies, services and server logs come from consentgate, not from hand-written text."""
    html = (await client.get("/datenschutz")).text
    assert html.count("data-consentgate-declaration") == 1
    assert html.count('<section class="consentgate-declaration" lang="de"') == 1
    for service in SERVICE_IDS:  # the footer and other pages link /datenschutz#<service id>
        assert f'<h3 id="{service}">Einsatz von ' in html, service
    assert "Video abspielen" in html and "Karte anzeigen" in html  # the two-click promise
    assert "youtube-nocookie.com" in html
    assert "statistik.stadtwerke-musterstadt.de" in html  # the site's own Matomo
    # The example logs to ./logs for 90 days (consentgate.toml); the page says exactly that.
    assert "Server-Protokolle</h3>" in html and "mehr als 90 Tage zurückliegt" in html
    assert "die ersten 24 von 32 Bit" in html
    assert '<a href="#consentgate-declaration">' in html
    # The controller and contact parts stay the operator's own.
    assert 'id="verantwortlicher"' in html and "datenschutz@stadtwerke-musterstadt.de" in html
    assert html.count("data-consentgate-open>") >= 3  # status section, declaration, footer


# --- The pages alone, without the middleware -------------------------------------------------
def example_declaration() -> Declaration:
    """Return the declaration the example site generates from its settings."""
    settings = Settings.from_file(
        ROOT / "example_site" / "consentgate.toml", environ={SECRET_ENV: "t" * 40}
    )
    return render_declaration(settings, "de", "html")


@dataclass(frozen=True)
class FakeConsent:
    """Stands in for the state consentgate puts into ``scope["consentgate"]``."""

    decided: bool = False
    consent_id: str | None = None
    granted: frozenset[str] = field(default_factory=frozenset)

    def allows(self, service_id: str) -> bool:
        return service_id in self.granted


def test_privacy_page_says_when_consent_state_is_missing() -> None:
    html = pages.datenschutz(None, example_declaration())
    assert "Einwilligungsstatus nicht verfügbar" in html
    assert status_rows(html) == {}


def test_privacy_page_lists_each_service_as_granted_or_not() -> None:
    state = FakeConsent(decided=True, consent_id="c-1", granted=frozenset({"matomo", "youtube"}))
    rows = status_rows(pages.datenschutz(state, example_declaration()))
    assert rows == {
        service: "erlaubt" if service in {"matomo", "youtube"} else "nicht erlaubt"
        for service in SERVICE_IDS
    }


def test_privacy_page_escapes_the_consent_id() -> None:
    html = pages.datenschutz(
        FakeConsent(decided=True, consent_id='<b>"x"</b>'), example_declaration()
    )
    assert "&lt;b&gt;&quot;x&quot;&lt;/b&gt;" in html
    assert '<b>"x"</b>' not in html


def test_gtm_noscript_follows_the_opening_body_tag() -> None:
    html = pages.home()
    body = html.index("<body>") + len("<body>")
    assert html[body:].lstrip().startswith("<!-- Google Tag Manager (noscript) -->")
    assert '<noscript><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-ABC1234"' in html


def test_pages_carry_the_vendor_fallbacks_and_hints() -> None:
    html = pages.impressum()
    assert '<link rel="preconnect" href="https://www.googletagmanager.com">' in html
    assert '<link rel="dns-prefetch" href="//connect.facebook.net">' in html
    assert "matomo.php?idsite=1&amp;rec=1" in html
    assert 'src="https://www.facebook.com/tr?id=1234567890&ev=PageView&noscript=1"' in html


def test_navigation_marks_the_current_page() -> None:
    html = pages.strom()
    assert '<a href="/strom" aria-current="page">Strom</a>' in html
    assert html.count('aria-current="page"') == 1
    assert '<a class="skip-link" href="#inhalt">' in html
    assert '<button type="button" data-consentgate-open>Cookie-Einstellungen</button>' in html


def test_econda_page_name_cannot_break_out_of_its_script() -> None:
    html = pages.layout(
        path="/", title="t", description="d", main="<h1>t</h1>", econda_content="</script><x>"
    )
    assert "</script><x>" not in html
    assert "\\u003c/script\\u003e\\u003cx\\u003e" in html


TRACKER_NEEDLES = [
    "googletagmanager.com",
    "code.etracker.com",
    "connect.facebook.net",
    "facebook.com/tr",
    "statistik.stadtwerke-musterstadt.de",
    "emos3",
    "youtube",
    "google.com/maps",
    "fbq(",
    "_paq",
    "gtm.start",
]


@pytest.mark.parametrize("path", PAGES)
async def test_no_tracker_is_live_before_a_decision(client: httpx.AsyncClient, path: str) -> None:
    from tests.middleware.helpers import leaks

    html = (await client.get(path)).content
    assert leaks(html, TRACKER_NEEDLES) == []


async def test_everything_is_live_after_accepting_all(client: httpx.AsyncClient) -> None:
    from tests.middleware.helpers import leaks

    await client.post("/_consent/decision", json={"accept": "all"})
    home = (await client.get("/")).content
    live = leaks(home, TRACKER_NEEDLES)
    for needle in ("googletagmanager.com", "code.etracker.com", "youtube", "fbq(", "_paq"):
        assert any(needle in item for item in live), needle
    assert b"data-consentgate-service" not in home


FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


async def test_requests_are_logged_masked_and_flushed_at_shutdown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The example site writes ./logs/access-<today>.log; the app never sees the full address."""
    monkeypatch.setenv(SECRET_ENV, "t" * 40)
    monkeypatch.chdir(tmp_path)
    from example_site.app import create_app

    app = create_app()
    transport = httpx.ASGITransport(app=app, client=("198.51.100.77", 40123))
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        response = await client.get(
            "/strom?tarif=öko",
            headers={"user-agent": FIREFOX_LINUX},
        )
        assert response.status_code == 200
        assert "198.51.100.77" not in response.text
    [log] = (tmp_path / "logs").iterdir()
    [line] = log.read_text().splitlines()
    assert line.startswith("198.51.100.0 - - [")
    assert f'"GET /strom HTTP/1.1" 200 {len(response.content)} "-" "Firefox/128 (Linux)"' in line


def test_the_demo_app_opens_the_dashboard_with_a_private_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(SECRET_ENV, "t" * 40)
    monkeypatch.delenv("CONSENTGATE_DPO__TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    from example_site.app import create_app

    async def admin(app: ASGIApp, token: str) -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get(
                "/_consent/admin/", headers={"authorization": f"Bearer {token}"}
            )
            return response.status_code

    plain = create_app()
    assert not (tmp_path / ".demo-dpo-token").exists()
    assert asyncio.run(admin(plain, "x" * 40)) == 404  # no token: no dashboard
    demo = create_app(demo_dashboard=True)
    token_file = tmp_path / ".demo-dpo-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text(encoding="ascii").strip()
    assert "CONSENTGATE_DPO__TOKEN" not in os.environ  # nothing leaks to other apps
    assert asyncio.run(admin(demo, token)) == 200
    assert asyncio.run(admin(demo, "x" * 40)) == 401
    assert ".demo-dpo-token" in capsys.readouterr().err


def test_an_empty_demo_token_file_does_not_open_the_dashboard(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SECRET_ENV, "t" * 40)
    monkeypatch.delenv("CONSENTGATE_DPO__TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("example_site.app.time.sleep", lambda seconds: None)
    (tmp_path / ".demo-dpo-token").write_text("short\n", encoding="ascii")
    from example_site.app import create_app

    with pytest.raises(ValueError, match="token"):
        create_app(demo_dashboard=True)
    (tmp_path / ".demo-dpo-token").write_text("", encoding="ascii")
    with pytest.raises(RuntimeError, match="empty"):
        create_app(demo_dashboard=True)
