"""The ASGI apps ``bench.privacy`` serves with uvicorn: one JSON route, with and without logging.

Run uvicorn with ``--factory``: ``bench.privacy_apps:bare`` is the Starlette app alone;
``bench.privacy_apps:logged`` is the same app inside
``ClientAddressMiddleware(AccessLogMiddleware(app))``, writing to the folder named by
``CONSENTGATE_BENCH_LOGS``; ``bench.privacy_apps:logged_proxied`` is that with 127.0.0.1 a
trusted proxy, so the middleware reads the client from ``X-Forwarded-For`` (serve it with
``--no-proxy-headers``: uvicorn's default already replaces the client by that address).
``consent_plain`` and ``consent_logged`` put the app inside ``ConsentMiddleware`` (the
settings of ``bench.page.bench_settings_data``, ledger in ``CONSENTGATE_BENCH_STATE``),
the latter with ``[access_log] directory`` set, so it composes the same two middlewares.

Routes: ``/json`` (the small document of ``bench.page.json_body``) and ``/_bench/stats``
(the access log's counters as JSON, ``{}`` without a log), which is logged like any request.
"""

from __future__ import annotations

import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from bench.page import bench_settings_data, json_body
from consentgate.config import AccessLogSettings, IPSettings, Settings
from consentgate.middleware import (
    AccessLog,
    AccessLogMiddleware,
    ClientAddressMiddleware,
    ConsentMiddleware,
)

#: The variable naming the access-log folder of the logged apps.
LOGS_ENV = "CONSENTGATE_BENCH_LOGS"
#: The variable naming the folder of the consent ledger of the ``consent_*`` apps.
STATE_ENV = "CONSENTGATE_BENCH_STATE"
#: The route answering the access log's counters.
STATS_PATH = "/_bench/stats"


def build_app() -> Starlette:
    """Return the bare app: ``/json`` and the stats route, no middleware."""

    async def json_route(request: Request) -> Response:
        return Response(json_body(), media_type="application/json")

    async def stats_route(request: Request) -> Response:
        log: AccessLog | None = getattr(request.app.state, "access_log", None)
        data: dict[str, Any] = {}
        if log is not None:
            stats = log.stats()
            data = {
                "written": stats.written,
                "dropped": stats.dropped,
                "queued": stats.queued,
                "last_error": stats.last_error,
            }
        return JSONResponse(data)

    return Starlette(routes=[Route("/json", json_route), Route(STATS_PATH, stats_route)])


def log_directory() -> str:
    """Return the access-log folder named by ``CONSENTGATE_BENCH_LOGS``."""
    directory = os.environ.get(LOGS_ENV)
    if not directory:
        raise RuntimeError(f"set {LOGS_ENV} to the folder the access log goes to")
    return directory


def _logged(ip: IPSettings) -> ASGIApp:
    app = build_app()
    log = AccessLog(AccessLogSettings(directory=log_directory()))
    app.state.access_log = log
    return ClientAddressMiddleware(AccessLogMiddleware(app, log=log), settings=ip)


def bare() -> ASGIApp:
    """Return the app without middleware (uvicorn ``--factory``)."""
    return build_app()


def logged() -> ASGIApp:
    """Return the app behind IP masking and the access log; the peer is not trusted."""
    return _logged(IPSettings())


def logged_proxied() -> ASGIApp:
    """Return ``logged`` with 127.0.0.1 a trusted proxy: the client is read from XFF."""
    return _logged(IPSettings(trusted_proxies=["127.0.0.1"]))


def _consent(with_log: bool) -> ASGIApp:
    app = build_app()
    data = bench_settings_data(os.environ.get(STATE_ENV) or None)
    if with_log:
        data["access_log"] = {"directory": log_directory()}
    middleware = ConsentMiddleware(app, settings=Settings.from_mapping(data))
    app.state.access_log = middleware.access_log
    return middleware


def consent_plain() -> ASGIApp:
    """Return the app inside ``ConsentMiddleware`` without an access log."""
    return _consent(with_log=False)


def consent_logged() -> ASGIApp:
    """Return the app inside ``ConsentMiddleware`` with ``[access_log] directory`` set."""
    return _consent(with_log=True)
