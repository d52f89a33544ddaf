"""The Starlette app of the example site, with consentgate mounted the way an operator would.

Run it from the repository root with ``uvicorn example_site.app:app --reload`` and open
http://127.0.0.1:8000/. Settings come from ``example_site/consentgate.toml``; the signing key
from ``CONSENTGATE_SECRET_KEYS`` or, for the demo only, from ``./.demo-secret``; the DPO
dashboard at http://127.0.0.1:8000/_consent/admin/ takes the token in ``./.demo-dpo-token``.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from consentgate.config import DPOSettings, Settings
from consentgate.middleware import ConsentMiddleware
from consentgate.widgets import render_declaration

from . import pages

HERE = Path(__file__).resolve().parent
#: The settings file used when ``create_app`` gets no path.
DEFAULT_SETTINGS = HERE / "consentgate.toml"
STATIC_DIR = HERE / "static"

#: The variable consentgate reads its signing keys from.
KEYS_ENV = "CONSENTGATE_SECRET_KEYS"
#: Where the demo keeps its generated signing key, relative to the working directory.
DEMO_KEY_FILE = ".demo-secret"
#: Where the demo keeps its DPO token (for the dashboard), relative to the working directory.
DEMO_DPO_TOKEN_FILE = ".demo-dpo-token"  # noqa: S105 (a file name)


def ensure_demo_secret() -> None:
    """Set ``CONSENTGATE_SECRET_KEYS`` from ``./.demo-secret`` unless it is already set.

    FOR THE DEMO ONLY: the key is created on first use (``secrets.token_urlsafe(32)``, file
    mode 0600) so that ``uvicorn example_site.app:app`` works without any setup. A real
    deployment sets ``CONSENTGATE_SECRET_KEYS`` from its secret store and never writes keys
    next to the code.
    """
    _demo_value(KEYS_ENV, DEMO_KEY_FILE)


def demo_dpo_token() -> str:
    """Return the token kept in ``./.demo-dpo-token``, created on first use (mode 0600).

    FOR THE DEMO ONLY, like ``ensure_demo_secret``: it switches on the DPO dashboard at
    ``/_consent/admin/`` when the settings name no token. A real deployment sets
    ``CONSENTGATE_DPO__TOKEN`` from its secret store.
    """
    return _read_or_create(Path.cwd() / DEMO_DPO_TOKEN_FILE)


def _demo_value(variable: str, name: str) -> None:
    """Put the value kept in ``./name`` (created if missing) into ``variable`` unless set."""
    if variable not in os.environ:
        os.environ[variable] = _read_or_create(Path.cwd() / name)


def _read_or_create(path: Path) -> str:
    try:
        # O_EXCL: two workers starting at once must not overwrite each other's value.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another worker may have created it and not written it yet.
        for _ in range(50):
            value = path.read_text(encoding="ascii").strip()
            if value:
                return value
            time.sleep(0.02)
        raise RuntimeError(f"{path.name} is empty; delete it to get a new value") from None
    value = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(value + "\n")
    return value


async def home(request: Request) -> HTMLResponse:
    return HTMLResponse(pages.home())


async def strom(request: Request) -> HTMLResponse:
    return HTMLResponse(pages.strom())


async def kundencenter(request: Request) -> HTMLResponse:
    return HTMLResponse(pages.kundencenter())


async def ueber_uns(request: Request) -> HTMLResponse:
    return HTMLResponse(pages.ueber_uns())


async def datenschutz(request: Request) -> HTMLResponse:
    # The middleware puts the visitor's consent state into the scope; without it (middleware
    # missing or misconfigured) the page says so instead of guessing.
    state = request.scope.get("consentgate")
    declaration = request.app.state.declaration  # generated once, in create_app
    # The page shows this visitor's consent id: no shared cache may keep it.
    return HTMLResponse(
        pages.datenschutz(state, declaration), headers={"Cache-Control": "private, no-store"}
    )


async def impressum(request: Request) -> HTMLResponse:
    return HTMLResponse(pages.impressum())


async def not_found(request: Request, exc: Exception) -> HTMLResponse:
    return HTMLResponse(pages.not_found(), status_code=404)


def create_app(settings_path: str | None = None, *, demo_dashboard: bool = False) -> Starlette:
    """Return the example site with ``ConsentMiddleware`` configured from ``settings_path``.

    Without a path, ``example_site/consentgate.toml`` is used. ``CONSENTGATE_*`` environment
    variables override the file; see ``ensure_demo_secret`` for the signing key. With
    ``demo_dashboard`` (``make demo``) and no DPO token set, ``demo_dpo_token`` supplies one.
    """
    ensure_demo_secret()
    settings = Settings.from_file(settings_path or DEFAULT_SETTINGS)
    if demo_dashboard and settings.dpo.token is None:
        # Validated: a shortened or empty token file must not open the dashboard.
        dpo = DPOSettings.model_validate({"token": demo_dpo_token()})
        settings = settings.model_copy(update={"dpo": dpo})
        print(
            "consentgate demo: DPO dashboard at /_consent/admin/, "
            f"sign in with the token in ./{DEMO_DPO_TOKEN_FILE}",
            file=sys.stderr,
        )
    routes = [
        Route("/", home),
        Route("/strom", strom),
        Route("/kundencenter", kundencenter),
        Route("/ueber-uns", ueber_uns),
        Route("/datenschutz", datenschutz),
        Route("/impressum", impressum),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        # The self-hosted econda library lives at /js/emos3.js (a stand-in here).
        Mount("/js", app=StaticFiles(directory=STATIC_DIR / "js"), name="js"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(ConsentMiddleware, settings=settings)],
        exception_handlers={404: not_found},
    )
    # The privacy page embeds consentgate's cookie declaration, generated from the same settings.
    app.state.declaration = render_declaration(settings, "de", "html")
    return app


app = create_app(demo_dashboard=True)
