"""Helpers for real-browser tests: the example site under uvicorn, and a record of trackers."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import http.server
import io
import ipaddress
import itertools
import os
import re
import secrets
import shutil
import socket
import socketserver
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Literal, Self, TypeVar
from urllib.parse import urlsplit

import uvicorn
from playwright.sync_api import BrowserContext, Page, Request, Route
from starlette.applications import Starlette

from consentgate.config import Settings

ROOT = Path(__file__).resolve().parents[2]
# example_site is not an installed package; under --import-mode=importlib the repository root
# is only on sys.path if a module puts it there (as tests/example_site does).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The settings file of the example site, copied for every ``SiteServer``.
EXAMPLE_SETTINGS = ROOT / "example_site" / "consentgate.toml"
#: Where browser tests save screenshots and other evidence (ignored by git).
ARTIFACTS = ROOT / "test-artifacts"
#: The variable consentgate reads its signing keys from.
KEYS_ENV = "CONSENTGATE_SECRET_KEYS"

#: axe-core, pinned: version and the ``dist.integrity`` of its npm tarball.
AXE_VERSION = "4.14.1"
AXE_INTEGRITY = "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="  # noqa: E501
AXE_TARBALL_URL = f"https://registry.npmjs.org/axe-core/-/axe-core-{AXE_VERSION}.tgz"
#: Downloads kept between runs.
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "consentgate-tests"

# One sequence for the proxy and every TrackerLog, so their records can be merged in order.
_SEQUENCE = itertools.count(1)
# Environment and working directory are process-wide: one app is created at a time.
_CREATE_LOCK = threading.Lock()

TomlValue = str | int | float | bool | list[str]


def artifacts_dir() -> Path:
    """Return ``ARTIFACTS``, creating it if needed."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# --- The example site under uvicorn -------------------------------------------------------------


def _toml_value(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


def settings_text(overrides: Mapping[str, TomlValue] | None = None, extra_toml: str = "") -> str:
    """Return the example site's settings with top-level keys replaced and ``extra_toml`` added."""
    text = EXAMPLE_SETTINGS.read_text(encoding="utf-8")
    for key, value in (overrides or {}).items():
        if not re.fullmatch(r"[a-z_]+", key):
            raise ValueError(f"override {key!r}: only top-level keys; use extra_toml for tables")
        line = f"{key} = {_toml_value(value)}"
        table = re.search(r"^\[", text, re.MULTILINE)
        top_end = table.start() if table else len(text)  # top-level keys come before tables
        found = re.search(rf"^{key}\s*=.*$", text[:top_end], re.MULTILINE)
        if found:
            text = text[: found.start()] + line + text[found.end() :]
        else:
            text = text[:top_end] + line + "\n\n" + text[top_end:]
    if extra_toml:
        text += "\n" + extra_toml.strip() + "\n"
    tomllib.loads(text)  # a broken override fails here, naming the TOML error
    return text


class _Running:
    """``with`` starts the server and stops it again."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class SiteServer(_Running):
    """The example site with consentgate, served by uvicorn on 127.0.0.1 in a thread."""

    def __init__(
        self,
        *,
        overrides: Mapping[str, TomlValue] | None = None,
        extra_toml: str = "",
        directory: Path | None = None,
    ) -> None:
        # ``overrides`` replaces top-level keys of the example settings (``{"revision": 2}``);
        # ``extra_toml`` is appended (tables). The signing key is random per server and is in
        # the environment only while the app is created, which is when consentgate reads it.
        self._overrides = dict(overrides or {})
        self._extra_toml = extra_toml
        self._own_directory = directory is None
        self.directory = directory
        self.secret_key = secrets.token_urlsafe(32)  # 43 characters
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port = 0

    def __repr__(self) -> str:
        return f"SiteServer(url={self.url!r})" if self.port else "SiteServer(not started)"

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT`` (no trailing slash)."""
        if not self.port:
            raise RuntimeError("SiteServer is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def settings_path(self) -> Path:
        """The settings file this server runs with."""
        if self.directory is None:
            raise RuntimeError("SiteServer is not started")
        return self.directory / "consentgate.toml"

    @property
    def db_path(self) -> Path:
        """The SQLite consent ledger of this server."""
        return self.settings_path.parent / "consentgate.db"

    def settings(self) -> Settings:
        """Return the settings the server runs with, loaded anew from its file."""
        return Settings.from_file(self.settings_path, {**os.environ, KEYS_ENV: self.secret_key})

    def start(self, timeout: float = 10.0) -> SiteServer:
        """Write the settings, start uvicorn and wait until it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("SiteServer is already started")
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="consentgate-site-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        overrides = {"store_url": f"sqlite:///{self.db_path}", **self._overrides}
        self.settings_path.write_text(settings_text(overrides, self._extra_toml), "utf-8")
        config = uvicorn.Config(
            self._create_app(),
            log_level="warning",
            log_config=None,  # leave the test process's logging setup alone
            access_log=False,
            lifespan="on",
            ws="none",  # nothing here speaks WebSocket; spares importing websockets
        )
        self._server = server = uvicorn.Server(config)
        self._socket = sock = socket.create_server(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._thread = thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn:{self.port}", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn exited during start-up; see the captured log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {timeout} s")
            time.sleep(0.01)
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout):
            pass

    def _create_app(self) -> Starlette:
        assert self.directory is not None
        with _CREATE_LOCK, _environ(KEYS_ENV, self.secret_key), contextlib.chdir(self.directory):
            # Imported here: importing the module builds its module-level demo app, which
            # must find the key in the environment (else it writes ./.demo-secret) and put
            # its relative SQLite file in our temporary directory, not the working directory.
            from example_site.app import create_app

            return create_app(str(self.settings_path))

    def stop(self, timeout: float = 10.0) -> None:
        """Shut uvicorn down, wait for its thread and remove the temporary directory."""
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(f"uvicorn on port {self.port} did not stop")
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        self.port = 0
        if self._own_directory and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


class _PageHandler(http.server.BaseHTTPRequestHandler):
    server: _PageHTTPServer

    def do_GET(self) -> None:
        page = self.server.pages.get(self.path.split("?", 1)[0])
        if page is None:
            self.send_error(404)
            return
        body, content_type = page
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _PageHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _PageHandler)
        self.pages: dict[str, tuple[bytes, str]] = {}


_S = TypeVar("_S", bound=socketserver.TCPServer)


class _Background(_Running, Generic[_S]):
    """A socket server on 127.0.0.1, serving in a background thread."""

    def __init__(self) -> None:
        self._server: _S | None = None
        self._thread: threading.Thread | None = None

    def _make(self) -> _S:
        raise NotImplementedError

    @property
    def server(self) -> _S:
        """The running server; an error before ``start``."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._server

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Self:
        """Listen and serve in a background thread."""
        self._server = self._make()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._server.server_close()
        self._server = self._thread = None


class PageServer(_Background[_PageHTTPServer]):
    """Serves pages a test writes itself (fixtures for the harness, banner.js alone) on loopback."""

    def _make(self) -> _PageHTTPServer:
        return _PageHTTPServer()

    def add(self, path: str, body: str, content_type: str = "text/html; charset=utf-8") -> str:
        """Serve ``body`` at ``path`` and return its full URL."""
        self.server.pages[path] = (body.encode("utf-8"), content_type)
        return self.url + path


# --- Every host the browser tries to contact ----------------------------------------------------


@dataclass(frozen=True)
class ProxyHit:
    """One request the recording proxy received."""

    seq: int
    method: str
    host: str
    target: str


class _ProxyHandler(socketserver.StreamRequestHandler):
    server: _ProxyServer
    timeout = 5

    def handle(self) -> None:
        try:
            request_line = self.rfile.readline(8192).decode("latin-1").strip()
            headers: dict[str, str] = {}
            while True:
                line = self.rfile.readline(8192).decode("latin-1")
                if line in ("\r\n", "\n", ""):
                    break
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        except OSError:
            return
        method, _, rest = request_line.partition(" ")
        target = rest.rsplit(" ", 1)[0] if " " in rest else rest
        if not method:
            return
        if method == "CONNECT":
            host = urlsplit("//" + target).hostname or target
        else:
            host = urlsplit(target).hostname or headers.get("host", "").rsplit(":", 1)[0]
        self.server.record(ProxyHit(next(_SEQUENCE), method, host.lower(), target))
        body = b"consentgate test proxy: nothing is forwarded\n"
        with contextlib.suppress(OSError):  # the browser may have given up already
            self.wfile.write(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.lock = threading.Lock()
        self.hits: list[ProxyHit] = []

    def record(self, hit: ProxyHit) -> None:
        with self.lock:
            self.hits.append(hit)


class RecordingProxy(_Background[_ProxyServer]):
    """An HTTP proxy on 127.0.0.1 that records each request's host and answers 502."""

    def _make(self) -> _ProxyServer:
        return _ProxyServer()

    def hits(self, after: int = 0) -> list[ProxyHit]:
        """Return the requests received so far (with sequence number above ``after``), in order."""
        if self._server is None:
            return []
        with self._server.lock:
            return [hit for hit in self._server.hits if hit.seq > after]

    def hosts(self, after: int = 0) -> set[str]:
        """Return the hosts of ``hits(after)``."""
        return {hit.host for hit in self.hits(after)}


#: Hosts Chromium itself contacts while a page is open, whatever Playwright's flags: the GAIA
#: account check (``accounts.google.com/ListAccounts``, retried with back-off) and the on-demand
#: "Optimization Guide On DeviceModels Manifest" component (``update.googleapis.com``), seen
#: with Debian's Chromium 156. ``TrackerLog`` leaves proxy hits to them out; routed requests
#: (anything a page fetches) are never left out.
BROWSER_SERVICE_HOSTS = frozenset({"accounts.google.com", "update.googleapis.com"})


def mark() -> int:
    """Return a sequence number: everything recorded later has a higher one."""
    return next(_SEQUENCE)


@dataclass(frozen=True)
class TrackerRequest:
    """One attempt to contact a non-loopback host: a routed request or a proxy hit."""

    seq: int
    url: str
    host: str
    resource_type: str
    """Playwright's resource type, or ``"connect"``/``"proxy"`` for what the proxy saw."""
    method: str
    via: Literal["route", "proxy"]


_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_STUB_HTML = "<!doctype html><title>stub</title><p>third-party stub</p>"


def is_loopback(host: str) -> bool:
    """Return whether ``host`` is localhost or a loopback address."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TrackerLog:
    """Requests to non-loopback hosts, answered with stubs, plus the proxy's hits."""

    def __init__(self, proxy: RecordingProxy | None = None) -> None:
        self.proxy = proxy
        self._lock = threading.Lock()
        self._routed: list[TrackerRequest] = []
        self._since = mark()

    def handle(self, route: Route, request: Request) -> None:
        """Let loopback requests through; record any other and answer it with a stub."""
        parts = urlsplit(request.url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or is_loopback(host):
            route.continue_()
            return
        kind = request.resource_type
        entry = TrackerRequest(next(_SEQUENCE), request.url, host, kind, request.method, "route")
        with self._lock:
            self._routed.append(entry)
        # CORS headers let module scripts, crossorigin tags and fetch() take the stub too.
        origin = request.headers.get("origin")
        headers = {"Access-Control-Allow-Origin": origin or "*"}
        if origin:
            headers["Access-Control-Allow-Credentials"] = "true"
        if kind == "script":
            route.fulfill(
                status=200, content_type="text/javascript", body="/* stub */", headers=headers
            )
        elif kind == "document":
            route.fulfill(status=200, content_type="text/html", body=_STUB_HTML, headers=headers)
        elif kind == "image":
            route.fulfill(status=200, content_type="image/gif", body=_GIF, headers=headers)
        else:
            route.fulfill(status=204, headers=headers)

    def requests(self) -> list[TrackerRequest]:
        """Return every recorded attempt since the log was made or cleared, in order."""
        with self._lock:
            entries = list(self._routed)
        if self.proxy is not None:
            entries += [
                TrackerRequest(
                    hit.seq,
                    f"https://{hit.target}" if hit.method == "CONNECT" else hit.target,
                    hit.host,
                    "connect" if hit.method == "CONNECT" else "proxy",
                    hit.method,
                    "proxy",
                )
                for hit in self.proxy.hits(self._since)
                if hit.host not in BROWSER_SERVICE_HOSTS
            ]
        return sorted(entries, key=lambda e: e.seq)

    def hosts(self) -> set[str]:
        """Return every non-loopback host the browser tried to contact."""
        return {e.host for e in self.requests()}

    def urls(self) -> list[str]:
        """Return the URLs of the routed requests, in order."""
        return [e.url for e in self.requests() if e.via == "route"]

    def script_urls(self) -> list[str]:
        """Return the URLs of the third-party scripts requested, in order."""
        return [e.url for e in self.requests() if e.resource_type == "script"]

    def proxy_hosts(self) -> set[str]:
        """Return the hosts the proxy saw (preconnects, WebSockets, service workers, ...)."""
        return {e.host for e in self.requests() if e.via == "proxy"}

    def wait_for_host(self, host: str, page: Page, timeout: float = 5.0) -> TrackerRequest:
        """Return the first attempt to contact ``host``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.requests():
                if entry.host == host:
                    return entry
            if time.monotonic() > deadline:
                raise AssertionError(f"no attempt to contact {host!r} within {timeout} s: {self!r}")
            page.wait_for_timeout(50)  # lets Playwright run the route handlers meanwhile

    def clear(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self._routed.clear()
            self._since = mark()

    def __repr__(self) -> str:
        return f"TrackerLog({[f'{e.method} {e.url}' for e in self.requests()]!r})"


_HINTS_JS = """() => {
    const hints = [
        "preconnect", "dns-prefetch", "prefetch", "preload", "modulepreload", "prerender",
    ];
    return [...document.querySelectorAll("link[rel]")]
        .filter(link => hints.some(hint => link.relList.contains(hint)))
        .map(link => link.href);
}"""


def resource_hint_hosts(page: Page) -> set[str]:
    """Return the non-loopback hosts that ``<link rel=preconnect|dns-prefetch|...>`` name now."""
    # Behind a proxy Chromium resolves no names itself, so dns-prefetch leaves no trace on the
    # wire (and preconnect only in a persistent context): the document is where to look.
    hrefs: list[str] = page.evaluate(_HINTS_JS)
    hosts = {(urlsplit(href).hostname or "").lower() for href in hrefs}
    return {h for h in hosts if h and not is_loopback(h)}


def record_trackers(context: BrowserContext, proxy: RecordingProxy | None = None) -> TrackerLog:
    """Route every request of ``context`` through a new ``TrackerLog`` and return it."""
    log = TrackerLog(proxy)
    context.route("**/*", log.handle)
    return log


def tracker_hosts(settings: Settings) -> frozenset[str]:
    """Return the hosts (and ``*.`` host patterns) of every service in ``settings``."""
    hosts: set[str] = set()
    for service in settings.services.values():
        hosts.update(service.hosts)
        for pattern in service.expanded_url_patterns():
            hosts.add(pattern.split("/", 1)[0].lower())
        if service.url is not None:
            hosts.add((urlsplit(service.url).hostname or "").lower())
    return frozenset(h for h in hosts if h and not is_loopback(h))


#: Every third-party host (or ``*.``-pattern) the services of the example site load from.
TRACKER_HOSTS = tracker_hosts(Settings.from_file(EXAMPLE_SETTINGS, {KEYS_ENV: "x" * 43}))


def is_tracker_host(host: str, hosts: frozenset[str] = TRACKER_HOSTS) -> bool:
    """Return whether ``host`` matches one of ``hosts`` (``*.example.com`` for subdomains)."""
    host = host.lower().rstrip(".")
    return any(
        host == h or (h.startswith("*.") and host.endswith(h[1:]))  # h[1:] is ".example.com"
        for h in hosts
    )


# --- axe-core -----------------------------------------------------------------------------------


def _check_integrity(data: bytes) -> bool:
    algorithm, _, expected = AXE_INTEGRITY.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, data).digest()).decode("ascii")
    return digest == expected


def _download_axe() -> bytes:
    try:
        with urllib.request.urlopen(AXE_TARBALL_URL, timeout=60) as response:
            data: bytes = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(
            f"cannot download axe-core {AXE_VERSION} from {AXE_TARBALL_URL}: {exc}. "
            f"The browser tests need it once; put the tarball at {_axe_tarball_path()} by hand "
            "if this machine cannot reach registry.npmjs.org."
        ) from exc
    if not _check_integrity(data):
        raise RuntimeError(
            f"axe-core {AXE_VERSION} from {AXE_TARBALL_URL} does not match the pinned "
            f"integrity {AXE_INTEGRITY}; refusing to use it"
        )
    return data


def _axe_tarball_path() -> Path:
    return CACHE_DIR / f"axe-core-{AXE_VERSION}.tgz"


@functools.cache
def axe_source() -> str:
    """Return ``axe.min.js`` of the pinned axe-core, downloaded once and checked every time."""
    path = _axe_tarball_path()
    data = path.read_bytes() if path.is_file() else b""
    if not _check_integrity(data):
        data = _download_axe()
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=CACHE_DIR, prefix=path.name, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        member = tar.extractfile("package/axe.min.js")
        if member is None:
            raise RuntimeError(f"axe-core {AXE_VERSION} tarball has no package/axe.min.js")
        return member.read().decode("utf-8")
