"""The access log: exactly the promised fields, daily files, several writers, retention."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from consentgate.config import AccessLogSettings
from consentgate.middleware import (
    AccessLog,
    AccessLogError,
    AccessLogMiddleware,
    ClientAddressMiddleware,
    ConsentMiddleware,
)
from consentgate.middleware.logfiles import Entry, file_day, referrer_origin, sweep

from .helpers import Message, call, make_settings

# 2026-11-21 09:15:02 UTC
NOW = datetime(2026, 11, 21, 9, 15, 2, tzinfo=UTC).timestamp()
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0"
COMBINED = re.compile(
    r'^(?P<ip>\S+) - - \[(?P<time>[^\]]+)\] "(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) '
    r'(?P<size>\d+|-) "(?P<referrer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)"$'
)


class Clock:
    """A settable clock in epoch seconds."""

    def __init__(self, moment: float = NOW) -> None:
        self.moment = moment

    def __call__(self) -> float:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta).total_seconds()


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path / "logs"


@pytest.fixture
def opened() -> Iterator[list[AccessLog]]:
    """Every AccessLog a test makes, closed afterwards so no writer thread outlives it."""
    made: list[AccessLog] = []
    yield made
    for log in made:
        log.close()


def make_log(
    opened: list[AccessLog],
    directory: Path,
    clock: Clock | None = None,
    sweep_every: float | None = None,
    **settings: Any,
) -> AccessLog:
    log = AccessLog(
        AccessLogSettings(directory=str(directory), **settings),
        clock=clock or Clock(),
        sweep_every=sweep_every,
    )
    opened.append(log)
    return log


async def page(request: Request) -> Response:
    if request.query_params.get("fail"):
        raise RuntimeError("boom")
    return HTMLResponse("<html><head></head><body><p>Strom</p></body></html>")


async def api(request: Request) -> Response:
    return JSONResponse({"ok": True})


def site(log: AccessLog) -> Any:
    app = Starlette(routes=[Route("/strom", page), Route("/api", api)])
    return ClientAddressMiddleware(AccessLogMiddleware(app, log=log))


async def get(app: Any, path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(
        app=app, client=("203.0.113.77", 50123), raise_app_exceptions=False
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://site.example") as client:
        return await client.get(path, headers=headers)


def lines(directory: Path, day: str = "2026-11-21", suffix: str = ".log") -> list[str]:
    return (directory / f"access-{day}{suffix}").read_text().splitlines()


async def no_content(scope: Any, receive: Any, send: Any) -> None:
    """A raw ASGI app answering 204."""
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def raw_request(method: str = "GET", path: str = "/x", **extra: Any) -> dict[str, Any]:
    """Return an HTTP scope as a server would pass it (no client unless given)."""
    return {"type": "http", "method": method, "path": path, "headers": [], "client": None, **extra}


async def test_combined_line_holds_only_the_promised_fields(
    logs: Path, opened: list[AccessLog]
) -> None:
    log = make_log(opened, logs)
    response = await get(
        site(log),
        "/strom?kundennummer=4711&email=a@b.de",
        **{
            "user-agent": FIREFOX,
            "referer": "https://www.google.com/search?q=max+mustermann+strom",
            "cookie": "session=secret",
        },
    )
    log.flush()
    [line] = lines(logs)
    assert line == (
        '203.0.113.0 - - [21/Nov/2026:09:15:02 +0000] "GET /strom HTTP/1.1" 200 '
        f'{len(response.content)} "https://www.google.com" "Firefox/120 (Windows)"'
    )
    for secret in ("203.0.113.77", "50123", "4711", "mustermann", "secret", "Win64", "rv:"):
        assert secret not in line


async def test_keep_query_logs_the_query_string(logs: Path, opened: list[AccessLog]) -> None:
    log = make_log(opened, logs, keep_query=True)
    await get(site(log), "/api?page=2")
    log.flush()
    assert lines(logs)[0].endswith('"GET /api?page=2 HTTP/1.1" 200 11 "-" "Other (Other)"')


async def test_jsonl_has_the_same_fields(logs: Path, opened: list[AccessLog]) -> None:
    log = make_log(opened, logs, format="jsonl")
    await get(
        site(log), "/api?x=1", **{"user-agent": FIREFOX, "referer": "http://a.example:8080/x"}
    )
    log.flush()
    [line] = lines(logs, suffix=".jsonl")
    assert json.loads(line) == {
        "time": "2026-11-21T09:15:02Z",
        "ip": "203.0.113.0",
        "method": "GET",
        "path": "/api",
        "protocol": "HTTP/1.1",
        "status": 200,
        "bytes": 11,
        "referrer": "http://a.example:8080",
        "browser": "Firefox",
        "browser_version": "120",
        "os": "Windows",
    }


async def test_logs_what_the_visitor_received_after_the_rewrite(
    logs: Path, opened: list[AccessLog], tmp_path: Path
) -> None:
    """Behind ConsentMiddleware: status and size are those of the rewritten page."""
    settings = make_settings(
        store_url=f"sqlite:///{tmp_path}/ledger.db", access_log={"directory": str(logs)}
    )
    app = Starlette(routes=[Route("/strom", page)])
    middleware = ConsentMiddleware(app, settings=settings)
    response = await get(middleware, "/strom", **{"accept-encoding": "identity"})
    assert middleware.access_log is not None
    opened.append(middleware.access_log)
    middleware.access_log.flush()
    [line] = (logs / f"access-{datetime.now(UTC).date().isoformat()}.log").read_text().splitlines()
    assert line.startswith("203.0.113.0 - - [")
    assert f'"GET /strom HTTP/1.1" 200 {len(response.content)} "-" "Other (Other)"' in line
    assert len(response.content) > len("<html><head></head><body><p>Strom</p></body></html>")


async def test_an_error_page_is_logged_with_its_status(logs: Path, opened: list[AccessLog]) -> None:
    log = make_log(opened, logs)
    response = await get(site(log), "/strom?fail=1")
    assert response.status_code == 500
    log.flush()
    assert f'"GET /strom HTTP/1.1" 500 {len(response.content)} ' in lines(logs)[0]


async def test_an_exception_before_any_response_is_logged_as_500(
    logs: Path, opened: list[AccessLog]
) -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    log = make_log(opened, logs)
    scope = raw_request("POST")
    with pytest.raises(RuntimeError):
        await call(AccessLogMiddleware(broken, log=log), scope)
    log.flush()
    assert '"POST /x HTTP/1.1" 500 - ' in lines(logs)[0]


async def test_a_request_answered_by_no_one_is_logged_as_499(
    logs: Path, opened: list[AccessLog]
) -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    log = make_log(opened, logs)
    scope = raw_request("GET")
    await call(AccessLogMiddleware(silent, log=log), scope)
    log.flush()
    assert lines(logs) == ['- - - [21/Nov/2026:09:15:02 +0000] "GET /x HTTP/1.1" 499 - "-" "-"']


@pytest.mark.parametrize(
    ("raw_path", "expected"),
    [
        pytest.param(b'/a"b', r'"GET /a\x22b HTTP/1.1"', id="quote"),
        pytest.param(b"/a\\b", r'"GET /a\x5cb HTTP/1.1"', id="backslash"),
        pytest.param(b"/a\nb", r'"GET /a\x0ab HTTP/1.1"', id="newline"),
        pytest.param("/straße".encode(), r'"GET /stra\xc3\x9fe HTTP/1.1"', id="utf8"),
        pytest.param(b"/%22ok%22", r'"GET /%22ok%22 HTTP/1.1"', id="percent-encoded-kept"),
    ],
)
async def test_request_line_is_escaped_so_a_line_cannot_be_forged(
    logs: Path, opened: list[AccessLog], raw_path: bytes, expected: str
) -> None:
    log = make_log(opened, logs)
    scope = raw_request(
        path=raw_path.decode("latin-1"),
        raw_path=raw_path,
        headers=[(b"referer", b'https://x.example"/'), (b"user-agent", b'"><script>')],
        client=("198.51.100.0", 0),
    )
    await call(AccessLogMiddleware(no_content, log=log), scope)
    log.flush()
    [line] = lines(logs)
    assert expected in line
    assert COMBINED.match(line), line


@pytest.mark.parametrize(
    ("header", "origin"),
    [
        pytest.param(b"https://www.google.com/search?q=x", "https://www.google.com", id="path"),
        pytest.param(b"HTTPS://WWW.Example.DE", "https://www.example.de", id="case"),
        pytest.param(b"https://user:pw@example.de/x", "https://example.de", id="userinfo"),
        pytest.param(b"https://example.de:8443#frag", "https://example.de:8443", id="port"),
        pytest.param(b"android-app://com.google.android.gm/", None, id="app"),
        pytest.param(b"http://www.example.com;jsessionid=abc/x", None, id="path-data-in-host"),
        pytest.param(b"http://[2001:db8::1]:8080/x", "http://[2001:db8::1]:8080", id="ipv6"),
        pytest.param(b"https://exa mple.de/", None, id="space"),
        pytest.param(b"/relative", None, id="relative"),
        pytest.param(b"", None, id="empty"),
    ],
)
def test_referrer_is_reduced_to_its_origin(header: bytes, origin: str | None) -> None:
    assert referrer_origin(header) == origin


def test_many_processes_writing_at_once_leave_every_line_intact(logs: Path) -> None:
    """Four processes append to the same daily file; no line is lost, torn or mixed."""
    script = textwrap.dedent(
        """
        import sys
        from consentgate.config import AccessLogSettings
        from consentgate.middleware.logfiles import AccessLog, Entry
        worker, count, directory = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
        log = AccessLog(AccessLogSettings(directory=directory), clock=lambda: 1795252502.0)
        log.start()
        for n in range(count):
            # lengths vary up to ~6 KB so batches straddle page and buffer boundaries
            path = f"/w{worker}/n{n}/" + "x" * ((n * 37) % 6000)
            log.add(Entry(1795252502.0, "203.0.113.0", "GET", path.encode(), b"", "1.1",
                          200, n, None, None))
        log.close()
        print(log.stats().written, log.stats().dropped)
        """
    )
    workers, count = 4, 5000
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(w), str(count), str(logs)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    outputs = [p.communicate(timeout=120)[0].split() for p in processes]
    assert all(p.returncode == 0 for p in processes)
    assert outputs == [[str(count), "0"]] * workers
    [name] = os.listdir(logs)
    seen: dict[int, list[int]] = {w: [] for w in range(workers)}
    for line in (logs / name).read_text().splitlines():
        match = COMBINED.match(line)
        assert match, line[:200]
        worker, number = re.match(r"GET /w(\d+)/n(\d+)/x* HTTP/1.1", match["request"]).groups()  # type: ignore[union-attr]
        assert int(match["size"] if match["size"] != "-" else 0) == int(number)
        seen[int(worker)].append(int(number))
    # every line once, and each process's lines in the order it wrote them
    assert seen == {w: list(range(count)) for w in range(workers)}


def test_files_are_split_by_utc_day_of_the_request(logs: Path, opened: list[AccessLog]) -> None:
    log = make_log(opened, logs)
    midnight = datetime(2026, 11, 22, tzinfo=UTC).timestamp()
    for moment in (midnight - 1, midnight, midnight + 1):
        log.add(Entry(moment, "203.0.113.0", "GET", b"/", b"", "1.1", 200, 1, None, None))
    log.flush()
    assert sorted(os.listdir(logs)) == ["access-2026-11-21.log", "access-2026-11-22.log"]
    assert len(lines(logs, "2026-11-21")) == 1
    assert len(lines(logs, "2026-11-22")) == 2


def test_a_moved_file_is_reopened(logs: Path, opened: list[AccessLog]) -> None:
    """logrotate-style renames: the next line goes to a fresh file of the right name."""
    log = make_log(opened, logs)
    entry = Entry(NOW, "203.0.113.0", "GET", b"/", b"", "1.1", 200, 1, None, None)
    log.add(entry)
    log.flush()
    (logs / "access-2026-11-21.log").rename(logs / "moved.log")
    log.add(entry)
    log.flush()
    assert len(lines(logs)) == 1
    assert len((logs / "moved.log").read_text().splitlines()) == 1


def touch_days(directory: Path, today: date, ages: range) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for age in ages:
        (directory / f"access-{(today - timedelta(days=age)).isoformat()}.log").write_text("x\n")


def ages_left(directory: Path, today: date) -> list[int]:
    days = [file_day(name) for name in os.listdir(directory)]
    return sorted((today - d).days for d in days if d is not None)


def test_sweep_keeps_exactly_retention_days(logs: Path) -> None:
    """A file of day D is kept while today <= D + 90 and deleted from day D + 91 on."""
    today = date(2026, 11, 21)
    touch_days(logs, today, range(0, 200, 1))
    deleted = sweep(logs, 90, today)
    assert ages_left(logs, today) == list(range(0, 91))
    assert len(deleted) == 200 - 91


def test_sweep_never_touches_other_files(logs: Path) -> None:
    today = date(2026, 11, 21)
    logs.mkdir()
    keep = [
        "notes.txt",
        "access.log",
        "access-latest.log",
        "access-2020-02-30.log",  # not a date
        "access-2020-01-01.log.bak",
        "error-2020-01-01.log",
        "xaccess-2020-01-01.log",
    ]
    for name in keep:
        (logs / name).write_text("keep\n")
    (logs / "access-2020-01-02.log").mkdir()  # a directory with a log's name
    (logs / "access-2020-01-03.log.gz").write_bytes(b"\x1f\x8b")
    (logs / "access-2020-01-04.jsonl").write_text("{}\n")
    deleted = sweep(logs, 90, today)
    assert sorted(p.name for p in deleted) == [
        "access-2020-01-03.log.gz",
        "access-2020-01-04.jsonl",
    ]
    assert sorted(os.listdir(logs)) == sorted([*keep, "access-2020-01-02.log"])


def test_retention_holds_across_a_restart(logs: Path, opened: list[AccessLog]) -> None:
    """Lines written on day D, the app stopped, started again on D+90 and D+91."""
    clock = Clock()
    first = make_log(opened, logs, clock)
    first.start()
    first.add(Entry(clock(), "203.0.113.0", "GET", b"/", b"", "1.1", 200, 1, None, None))
    first.close()
    assert os.listdir(logs) == ["access-2026-11-21.log"]

    clock.advance(days=90, hours=14)  # 2027-02-19 23:15, day D+90
    second = make_log(opened, logs, clock)
    second.start()
    second.close()
    assert os.listdir(logs) == ["access-2026-11-21.log"]

    clock.advance(hours=1)  # day D+91, 00:15
    third = make_log(opened, logs, clock)
    third.start()  # the start-up sweep, before any request
    third.close()
    assert os.listdir(logs) == []


def test_running_app_sweeps_without_traffic(logs: Path, opened: list[AccessLog]) -> None:
    clock = Clock()
    touch_days(logs, datetime.fromtimestamp(NOW, UTC).date(), range(85, 95))
    log = make_log(opened, logs, clock, sweep_every=0.05)
    log.start()
    _wait_for(lambda: max(ages_left(logs, date(2026, 11, 21))) == 90)
    clock.advance(days=3)
    _wait_for(lambda: max(ages_left(logs, date(2026, 11, 21))) == 87)
    assert log.stats().written == 0  # no request was needed


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


async def test_lifespan_starts_and_flushes_the_log(logs: Path, opened: list[AccessLog]) -> None:
    log = make_log(opened, logs)
    middleware = AccessLogMiddleware(Starlette(routes=[Route("/api", api)]), log=log)
    messages: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Message] = []

    async def receive() -> Message:
        if not messages[0]["type"].endswith("startup"):
            # between startup and shutdown the app serves a request
            assert log.running
            await get(ClientAddressMiddleware(middleware), "/api")
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert not log.running
    assert len(lines(logs)) == 1  # flushed at shutdown, no explicit flush


def test_a_full_queue_drops_and_counts(logs: Path, opened: list[AccessLog]) -> None:
    log = make_log(opened, logs, buffer_lines=100)
    for _ in range(150):
        log.add(Entry(NOW, None, "GET", b"/", b"", "1.1", 200, 0, None, None))
    assert log.stats().dropped == 50
    log.flush()
    assert log.stats().written == 100


async def test_disk_full_drops_lines_but_never_a_response(
    logs: Path, opened: list[AccessLog], caplog: pytest.LogCaptureFixture
) -> None:
    """Today's file is /dev/full: every write fails with ENOSPC."""
    os.mkdir(logs)
    os.symlink("/dev/full", logs / "access-2026-11-21.log")
    log = make_log(opened, logs)
    app = site(log)
    log.start()
    with caplog.at_level(logging.WARNING, logger="consentgate.access_log"):
        for _ in range(5):
            assert (await get(app, "/api")).status_code == 200
        log.close()
    stats = log.stats()
    assert (stats.written, stats.dropped) == (0, 5)
    assert stats.last_error is not None and "ENOSPC" in stats.last_error
    assert "5 dropped so far" in caplog.text or "dropped" in caplog.text
    assert "203.0.113" not in caplog.text  # the warning names counts, not visitors


def test_a_partly_written_batch_is_taken_back(logs: Path) -> None:
    """The file-size limit stops a batch half-way: the file keeps only whole lines."""
    script = textwrap.dedent(
        """
        import resource, signal, sys
        from consentgate.config import AccessLogSettings
        from consentgate.middleware.logfiles import AccessLog, Entry
        directory = sys.argv[1]
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        log = AccessLog(AccessLogSettings(directory=directory), clock=lambda: 1795252502.0)
        def entry(n): return Entry(1795252502.0, "203.0.113.0", "GET",
                                   f"/{n}/".encode() + b"x" * 200, b"", "1.1", 200, n, None, None)
        for n in range(10):
            log.add(entry(n))
        log.flush()
        resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))
        for n in range(10, 40):
            log.add(entry(n))
        log.flush()
        s = log.stats()
        print(s.written, s.dropped, s.last_error)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(logs)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    written, dropped, *error = done.stdout.split()
    assert (written, dropped) == ("10", "30")
    assert "EFBIG" in " ".join(error)
    content = (logs / "access-2026-11-21.log").read_text()
    assert content.endswith("\n")
    assert len(content.splitlines()) == 10
    assert all(COMBINED.match(line) for line in content.splitlines())


def test_an_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AccessLogError, match=r"access_log.directory .*file/logs.* cannot be"):
        AccessLog(AccessLogSettings(directory=str(blocker / "logs")))
    with pytest.raises(AccessLogError, match="not set"):
        AccessLog(AccessLogSettings())


async def test_an_app_that_refuses_the_lifespan_still_gets_its_sweeps(
    logs: Path, opened: list[AccessLog]
) -> None:
    """Django's ASGI handler raises on the lifespan scope; the sweeps must not wait for traffic."""

    async def no_lifespan(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("lifespan not supported")

    touch_days(logs, date(2026, 11, 21), range(89, 93))
    log = make_log(opened, logs, sweep_every=0.05)
    with pytest.raises(ValueError, match="not supported"):
        await AccessLogMiddleware(no_lifespan, log=log)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    _wait_for(lambda: ages_left(logs, date(2026, 11, 21)) == [89, 90])
    assert log.running


def test_a_forked_worker_writes_with_its_own_thread_and_descriptors(logs: Path) -> None:
    """gunicorn --preload: the log started in the master, then workers fork."""
    script = textwrap.dedent(
        """
        import os, sys
        from consentgate.config import AccessLogSettings
        from consentgate.middleware.logfiles import AccessLog, Entry
        log = AccessLog(AccessLogSettings(directory=sys.argv[1]), clock=lambda: 1795252502.0)
        def entry(n): return Entry(1795252502.0, "203.0.113.0", "GET", f"/{n}".encode(),
                                   b"", "1.1", 200, n, None, None)
        log.start()
        log.add(entry(0))
        log.flush()
        children = []
        for worker in (1, 2):
            pid = os.fork()
            if pid == 0:
                assert not log.running and log.pid == 0 and log.stats().queued == 0
                log.start()
                for n in range(worker * 1000, worker * 1000 + 500):
                    log.add(entry(n))
                log.close()
                os._exit(0 if log.stats().written == 500 else 3)
            children.append(pid)
        codes = [os.waitpid(pid, 0)[1] for pid in children]
        log.close()
        print(codes, log.stats().written)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(logs)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[0,", "0]", "1"]
    sizes = sorted(m["size"] for m in map(COMBINED.match, lines(logs)) if m)
    expected = sorted([str(n) for w in (1, 2) for n in range(w * 1000, w * 1000 + 500)] + ["-"])
    assert sizes == expected  # every worker line once, and the master's (0 bytes: "-")


async def test_a_cancelled_request_is_logged_as_499(logs: Path, opened: list[AccessLog]) -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        raise asyncio.CancelledError

    log = make_log(opened, logs)
    scope = raw_request()
    with pytest.raises(asyncio.CancelledError):
        await call(AccessLogMiddleware(slow, log=log), scope)
    log.flush()
    assert '"GET /x HTTP/1.1" 499 - ' in lines(logs)[0]


async def test_a_query_in_raw_path_is_cut_too(logs: Path, opened: list[AccessLog]) -> None:
    log = make_log(opened, logs)
    scope = raw_request(
        path="/suche",
        raw_path=b"/suche?q=max+mustermann",
        query_string=b"q=max+mustermann",
        headers=[(b"user-agent", b"jane.doe_MusterStrasse12 Spider/3")],
        client=("/run/app.sock", 0),
    )
    await call(AccessLogMiddleware(no_content, log=log), scope)
    log.flush()
    [line] = lines(logs)
    assert (
        line == '- - - [21/Nov/2026:09:15:02 +0000] "GET /suche HTTP/1.1" 204 - "-" "Other (Other)"'
    )
