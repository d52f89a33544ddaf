"""The ASGI apps ``bench.e2e`` serves with uvicorn: one Starlette app, bare and wrapped.

``bench.e2e_apps:bare`` is the app alone; ``bench.e2e_apps:wrapped`` (a factory: run uvicorn
with ``--factory``) is the same app inside ``ConsentMiddleware``. The middleware's settings
are read from the JSON file named by ``CONSENTGATE_BENCH_SETTINGS`` (a mapping shaped like
the TOML file), or are ``bench_settings()`` without it. Routes: ``/json`` (a small JSON
document), ``/page`` (the same ~80 KB page every time), ``/unique`` (a different body every
request).
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from bench.page import bench_settings, json_body, realistic_page
from consentgate.config import Settings
from consentgate.middleware import ConsentMiddleware

#: The variable naming the settings file of the wrapped app.
SETTINGS_ENV = "CONSENTGATE_BENCH_SETTINGS"


def build_app() -> Starlette:
    """Return the bare site: three routes, no middleware."""
    page = realistic_page()
    counter = itertools.count()

    async def json_route(request: Request) -> Response:
        return Response(json_body(), media_type="application/json")

    async def page_route(request: Request) -> Response:
        return HTMLResponse(page)

    async def unique_route(request: Request) -> Response:
        return HTMLResponse(realistic_page(unique=str(next(counter))))

    return Starlette(
        routes=[
            Route("/json", json_route),
            Route("/page", page_route),
            Route("/unique", unique_route),
        ]
    )


def load_settings() -> Settings:
    """Return the settings named by ``CONSENTGATE_BENCH_SETTINGS``, or ``bench_settings()``."""
    path = os.environ.get(SETTINGS_ENV)
    if not path:
        return bench_settings()
    return Settings.from_mapping(json.loads(Path(path).read_text(encoding="utf-8")), source=path)


def wrapped() -> ASGIApp:
    """Return the site inside ``ConsentMiddleware`` (uvicorn ``--factory``)."""
    return ConsentMiddleware(build_app(), settings=load_settings())


bare = build_app()
