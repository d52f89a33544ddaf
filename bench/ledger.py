"""The consent ledger at scale: decisions per second through the endpoint, export and verify.

Decisions: ``POST {prefix}/decision`` with ``{"accept":"all"}`` and a browser's headers (no
cookie: every request is a new visitor, so a new consent id and one record) through uvicorn
(one worker, loopback, ``--no-access-log``, loop and HTTP parser as ``bench.e2e`` runs it,
pinned likewise) serving the tiny app of ``bench.ledger_apps`` inside ``ConsentMiddleware``,
its ledger a SQLite file or a Redis server, loaded by ``wrk`` with 16 and 64 connections.
The baselines run in the same rounds, in their own process on the servers' CPU: SQLite,
rows of the size of the stored record inserted into the ledger's schema in WAL mode with
``synchronous=FULL``, one transaction per row (the durability the ledger gives a decision);
Redis, one coroutine awaiting ``XADD`` of a record-sized entry after the other on the same
``redis-server`` (``tests.redis_servers``: ``appendonly yes``, ``appendfsync always``).
The ceiling is the same uvicorn answering the route itself without any ledger. Rounds are
interleaved (every other one in reverse) and a ratio is the median of the per-round ratios.
After every run the ledger must hold exactly one record per 2xx answer the server gave
(counted server-side, those in flight at wrk's stop included), nothing spooled, nothing
else answered; at the end every chain must verify.

Where the time goes: the same decisions through ``ConsentMiddleware`` called directly
(raw ASGI, no HTTP server) on the servers' CPU: wall and CPU microseconds per decision,
and a cProfile of the event loop's thread on a CPU clock.

Export and verify: a ledger of ``--records`` records (SQLite filled by
``bench.ledger_fill.fill_sqlite``; Redis through ``append_many`` in batches of 2000 over its
16 chains, the write path of the app), then ``consentgate export --format jsonl``, ``...
--format csv`` and ``verify``, each in a fresh child process (``python -m
consentgate.middleware.cli --store URL``): wall time and peak RSS (``wait4``), output
checked (one line per record, the chain intact with every record).

``python -m bench.ledger [--records N] [--only http|export]``; without ``wrk`` the
end-to-end decisions are skipped (the in-process part still runs).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import http.client
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Scope

from bench.e2e import (
    _ERRORS,
    _NON_2XX,
    _RATE,
    LOAD_CPUS,
    ROOT,
    SECONDS,
    SERVER_CPUS,
    THREADS,
    WARMUP_SECONDS,
    Server,
    serve,
)
from bench.e2e_apps import SETTINGS_ENV
from bench.ledger_apps import (
    DECISION_BODY,
    REFERER,
    STATS_PATH,
    USER_AGENT,
    record_bytes,
    sample_draft,
    sample_record,
)
from bench.ledger_fill import drafts, fill_sqlite
from bench.page import bench_settings_data
from bench.privacy import lua_string
from consentgate.config import Settings
from consentgate.consent import CookieCodec, open_store
from consentgate.consent.record import ConsentRecord, RecordDraft
from consentgate.middleware import ConsentMiddleware
from tests.redis_servers import RedisServer

#: wrk connections per endpoint run.
CONNECTIONS = (16, 64)
#: Interleaved rounds (more than bench.e2e's: the raw loops wait on a disk that other
#: work on the machine shares, so single rounds scatter).
ROUNDS = 5
#: The endpoint keeps at least this share of the raw store's rate.
TARGET_RATIO = 0.5
#: Records of the export/verify part (``--records``).
RECORDS = 1_000_000
#: Drafts per ``append_many`` when filling the Redis ledger.
REDIS_FILL_BATCH = 2000
#: Export and verify targets: wall seconds and peak resident megabytes (10**6 bytes).
TARGET_SECONDS = 10.0
TARGET_MB = 100.0
#: How long the in-flight decisions may take to finish after wrk stopped.
SETTLE_SECONDS = 15.0
STORES = ("sqlite", "redis")
#: redis-server runs on the load CPU(s), next to wrk (which needs little at these rates):
#: the app (or the raw loop) has the servers' CPU to itself, and the store is elsewhere,
#: as a Redis server would be in production.
REDIS_CPUS = LOAD_CPUS
#: The in-process part: decisions per measurement, how many at a time, repeats (min kept).
DRIVER_DECISIONS = 4000
DRIVER_CONCURRENCY = 16
DRIVER_REPEATS = 3
#: Rows of the profile tables.
PROFILE_ROWS = 14


# --- Decisions per second -----------------------------------------------------------------------
def write_script(path: Path) -> Path:
    """Write the wrk script POSTing one decision per request, browser headers and all."""
    path.write_text(
        f"""-- Generated by bench/ledger.py: one consent decision per request, no cookie.
wrk.method = "POST"
wrk.body = {lua_string(DECISION_BODY)}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = {lua_string(USER_AGENT)}
wrk.headers["Referer"] = {lua_string(REFERER)}
wrk.headers["Accept-Language"] = "de-DE,de;q=0.9,en;q=0.8"
""",
        encoding="latin-1",
    )
    return path


_TOTAL = re.compile(r"(\d+) requests in ")


@dataclass(frozen=True, slots=True)
class Load:
    """What one wrk run did."""

    rate: float
    requests: int
    problems: tuple[str, ...]


def wrk_post(url: str, connections: int, seconds: int, script: Path) -> Load:
    """Load ``url`` with wrk running ``script``; return its rate and any errors it saw."""
    command = ["wrk", f"-t{THREADS}", f"-c{connections}", f"-d{seconds}s", "-s", str(script)]
    result = subprocess.run(  # noqa: S603
        [*command, url], capture_output=True, text=True, check=True
    )
    rate = _RATE.search(result.stdout)
    total = _TOTAL.search(result.stdout)
    if rate is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{result.stdout}{result.stderr}")
    problems = [m.group(0) for m in (_NON_2XX.search(result.stdout),) if m is not None]
    problems += [m.group(0) for m in (_ERRORS.search(result.stdout),) if m is not None]
    return Load(float(rate.group(1)), int(total.group(1)), tuple(problems))


def run_raw(kind: str, target: str, seconds: int, env: dict[str, str]) -> float:
    """Run the raw ``kind`` loop of ``bench.ledger_apps`` on the servers' CPU; rows/s."""
    command = [sys.executable, "-m", "bench.ledger_apps", kind, target, str(seconds)]
    process = subprocess.Popen(  # noqa: S603
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    if SERVER_CPUS:
        os.sched_setaffinity(process.pid, SERVER_CPUS)
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"raw {kind} loop failed:\n{err.decode(errors='replace')}")
    result = json.loads(out)
    return float(result["count"]) / float(result["seconds"])


def get_json(server: Server, path: str) -> dict[str, Any]:
    """GET ``path`` of ``server``; return its JSON object."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    data = json.loads(body)
    if response.status != 200 or not isinstance(data, dict):
        raise RuntimeError(f"{server.name} {path}: HTTP {response.status} {body[:200]!r}")
    return data


def store_count(url: str) -> int:
    """Return how many records the ledger at ``url`` holds (its own connection)."""

    async def count() -> int:
        store = open_store(url)
        try:
            return await store.count()
        finally:
            await store.close()

    return asyncio.run(count())


def store_verify(url: str) -> tuple[bool, int, str]:
    """Verify the ledger at ``url``: (intact, records checked, summary)."""

    async def verify() -> tuple[bool, int, str]:
        store = open_store(url)
        try:
            report = await store.verify()
        finally:
            await store.close()
        return report.ok, report.checked, str(report).splitlines()[0]

    return asyncio.run(verify())


@dataclass(slots=True)
class RunCheck:
    """The sums of the checks after each endpoint run of one variant."""

    runs: int = 0
    completed: int = 0  # requests wrk completed
    answered: int = 0  # 2xx answers the server gave (in-flight ones at wrk's stop included)
    stored: int = 0  # records the ledger gained
    spooled: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Endpoint:
    """A running uvicorn whose ledger is ``url``; counters as of the last check."""

    store: str
    url: str | None  # None: the ceiling app, which stores nothing
    server: Server
    prefix: str
    answered: int = 0
    stored: int = 0
    checks: dict[int, RunCheck] = field(default_factory=dict)

    def load(self, connections: int, seconds: int, script: Path, *, checked: bool = True) -> float:
        """Run wrk on the decision endpoint; check the ledger kept every answered decision."""
        load = wrk_post(self.server.url(self.prefix + "/decision"), connections, seconds, script)
        answered, stored = self.settle()
        check = self.checks.setdefault(connections, RunCheck()) if checked else RunCheck()
        new_answers, new_records = answered - self.answered, stored - self.stored
        self.answered, self.stored = answered, stored
        check.runs += 1
        check.completed += load.requests
        check.answered += new_answers
        check.stored += new_records
        where = f"{self.store} {connections} connections"
        check.problems += [f"{where}: wrk {problem}" for problem in load.problems]
        if not load.requests <= new_answers <= load.requests + connections:
            check.problems.append(
                f"{where}: wrk completed {load.requests}, server answered {new_answers} 2xx"
            )
        if self.url is None:
            return load.rate
        health = get_json(self.server, self.prefix + "/health")
        spool = health["spool"]
        check.spooled = int(spool["spooled"])
        if new_records != new_answers:
            check.problems.append(
                f"{where}: {new_answers} decisions answered 2xx but {new_records} stored"
            )
        if spool["depth"] or spool["spooled"] or health["store"] != "ok":
            check.problems.append(f"{where}: health {json.dumps(health)}")
        return load.rate

    def settle(self) -> tuple[int, int]:
        """Wait until the decisions in flight at wrk's stop are answered; (answered, stored)."""
        deadline = time.monotonic() + SETTLE_SECONDS
        last = -1
        while True:
            stats = get_json(self.server, STATS_PATH)
            answered = int(stats["ok"])
            if stats["failed"]:
                raise RuntimeError(f"{self.store}: {stats['failed']} decisions answered non-2xx")
            stored = answered if self.url is None else store_count(self.url)
            if (answered == last and stored == answered) or time.monotonic() > deadline:
                return answered, stored
            last = answered
            time.sleep(0.2)


@dataclass(frozen=True, slots=True)
class Decisions:
    """Median rates per second and median per-round ratios.

    Keys are (variant, connections): variant ``bare`` (the ceiling app), ``sqlite`` or
    ``redis`` (the endpoint on that ledger).
    """

    raw: dict[str, float]  # store -> raw rows/s
    endpoint: dict[tuple[str, int], float]  # decisions/s
    to_raw: dict[tuple[str, int], float]
    to_bare: dict[tuple[str, int], float]
    rounds: dict[tuple[str, int], list[float]]  # per-round ratios to raw
    raw_rounds: dict[str, list[float]]
    checks: dict[tuple[str, int], RunCheck]
    verified: dict[str, str]
    record: tuple[int, int, int]  # bytes of body, hash, personal of a stored record
    raw_record: tuple[int, int, int]  # the same of the baselines' rows


@contextmanager
def redis_server(folder: Path, cpus: set[int]) -> Iterator[RedisServer]:
    """Run a redis-server (appendonly, appendfsync always) in ``folder`` on ``cpus``."""
    server = RedisServer(folder)
    server.start()
    try:
        if cpus and server.pid is not None:
            os.sched_setaffinity(server.pid, cpus)
        yield server
    finally:
        server.stop()


def stored_sample(url: str) -> tuple[int, int, int]:
    """Return the sizes of the first record the endpoint stored at ``url``."""

    async def first() -> tuple[int, int, int]:
        store = open_store(url)
        try:
            async for stored in store.stored():
                return record_bytes(stored)
        finally:
            await store.close()
        raise RuntimeError(f"no record stored at {url}")

    return asyncio.run(first())


def write_settings(folder: Path, name: str, store_url: str) -> tuple[Path, Settings]:
    """Write the settings of one server (ledger at ``store_url``, its own spool)."""
    data = bench_settings_data(folder)
    data["store_url"] = store_url
    data["ledger"] = {"spool_directory": str(folder / f"spool-{name}")}
    path = folder / f"settings-{name}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path, Settings.from_mapping(data)


def decisions_per_second(folder: Path, redis: RedisServer, rounds: int, seconds: int) -> Decisions:
    """Serve the endpoint on SQLite and Redis and the ceiling app; load them and the raw
    loops interleaved."""
    script = write_script(folder / "decision.lua")
    sqlite_url = f"sqlite:///{folder / 'endpoint.db'}"
    urls: dict[str, str | None] = {"bare": None, "sqlite": sqlite_url, "redis": redis.url}
    raw_targets = {"sqlite": str(folder / "raw.db"), "redis": redis.url}
    keys = [(variant, connections) for variant in urls for connections in CONNECTIONS]
    raw: dict[str, list[float]] = {store: [] for store in STORES}
    rates: dict[tuple[str, int], list[float]] = {key: [] for key in keys}
    to_raw: dict[tuple[str, int], list[float]] = {key: [] for key in keys}
    to_bare: dict[tuple[str, int], list[float]] = {key: [] for key in keys}
    endpoints: dict[str, Endpoint] = {}
    with ExitStack() as stack:
        env: dict[str, str] = {}
        settings: Settings | None = None
        for variant, url in urls.items():
            path, settings = write_settings(folder, variant, url or "sqlite:///unused.db")
            env = {**os.environ, SETTINGS_ENV: str(path)}
            factory = "bare" if url is None else "decisions"
            target = f"--factory bench.ledger_apps:{factory}"
            server = stack.enter_context(serve(f"decisions-{variant}", target, env, folder))
            endpoints[variant] = Endpoint(variant, url, server, settings.prefix)
        assert settings is not None
        raw_record = record_bytes(sample_record(settings))
        for endpoint in endpoints.values():
            for connections in CONNECTIONS:
                endpoint.load(connections, WARMUP_SECONDS, script, checked=False)
        runs: list[tuple[str, int | None]] = [("sqlite", None)]
        runs += [
            (variant, connections) for variant in ("bare", "sqlite") for connections in CONNECTIONS
        ]
        runs += [("redis", None), *(("redis", connections) for connections in CONNECTIONS)]
        for index in range(rounds):
            round_raw: dict[str, float] = {}
            round_rates: dict[tuple[str, int], float] = {}
            # Forward, then backward: a drift of the machine's speed hits both sides alike.
            for variant, width in runs if index % 2 == 0 else runs[::-1]:
                if width is None:
                    round_raw[variant] = run_raw(variant, raw_targets[variant], seconds, env)
                else:
                    round_rates[(variant, width)] = endpoints[variant].load(width, seconds, script)
            for store in STORES:
                raw[store].append(round_raw[store])
            for (variant, width), rate in round_rates.items():
                rates[(variant, width)].append(rate)
                to_bare[(variant, width)].append(rate / round_rates[("bare", width)])
                if variant in round_raw:
                    to_raw[(variant, width)].append(rate / round_raw[variant])
        record = stored_sample(sqlite_url)
        verified = {}
        for store in STORES:
            ok, checked, summary = store_verify(str(urls[store]))
            verified[store] = summary if ok else f"BROKEN: {summary}"
            if checked != endpoints[store].stored:
                verified[store] += f" (but {endpoints[store].stored} were counted)"
    return Decisions(
        raw={store: statistics.median(values) for store, values in raw.items()},
        endpoint={key: statistics.median(values) for key, values in rates.items()},
        to_raw={key: statistics.median(values) for key, values in to_raw.items() if values},
        to_bare={key: statistics.median(values) for key, values in to_bare.items()},
        rounds=to_raw,
        raw_rounds=raw,
        checks={
            (variant, connections): check
            for variant, endpoint in endpoints.items()
            for connections, check in endpoint.checks.items()
        },
        verified=verified,
        record=record,
        raw_record=raw_record,
    )


def print_decisions(result: Decisions, rounds: int, seconds: int) -> None:
    """Print the decisions table and its checks."""
    pinned = f", servers on CPU {min(SERVER_CPUS)}" if SERVER_CPUS else ""
    redis_cpus = f" on CPU {','.join(map(str, sorted(REDIS_CPUS)))}" if REDIS_CPUS else ""
    print(
        f"ledger decisions: POST /_consent/decision {DECISION_BODY} (a new visitor each), "
        f"uvicorn (1 worker{pinned}) + wrk -t{THREADS} -d{seconds}s, "
        f"median of {rounds} interleaved rounds"
    )
    body, digest, personal = result.record
    print(
        f"  a stored record: {sum(result.record)} bytes (body {body} + hash {digest} + "
        f"personal {personal}); the baselines' rows: {sum(result.raw_record)} bytes"
    )
    print(
        "  raw sqlite: the ledger's schema, WAL, synchronous=FULL, one transaction per row;\n"
        "  raw redis: one coroutine awaiting XADD; redis-server appendonly yes, appendfsync "
        f"always{redis_cpus}; both loops on the servers' CPU\n"
        "  ceiling: the same uvicorn answering the route itself (reads the body, answers a "
        "receipt-sized JSON and a cookie);\n  µs more: per decision, over the ceiling's "
        "request (1/rate - 1/ceiling)"
    )
    print(
        f"  {'':<36}{'per s':>7}  {'vs raw':>6}  {'(rounds)':<11}  {'vs ceiling':>10}"
        f"  {'µs more':>7}"
    )
    for store in STORES:
        raw_rates = result.raw_rounds[store]
        print(
            f"  {store + ', raw loop':<36}{result.raw[store]:7.0f}  "
            f"{'':6}  ({min(raw_rates):.0f}-{max(raw_rates):.0f})"
        )
    for variant in ("bare", *STORES):
        for connections in CONNECTIONS:
            key = (variant, connections)
            name = "ceiling (no ledger)" if variant == "bare" else f"{variant}, endpoint"
            line = f"  {name + f', {connections} conn.':<36}{result.endpoint[key]:7.0f}  "
            if key in result.to_raw:
                ratios = result.rounds[key]
                spread = f"({min(ratios):.2f}-{max(ratios):.2f})"
                line += f"{result.to_raw[key]:6.2f}  {spread:<11}  "
            else:
                line += f"{'':6}  {'':<11}  "
            line += f"{result.to_bare[key]:10.2f}"
            ceiling = result.endpoint[("bare", connections)]
            added = 1e6 / result.endpoint[key] - 1e6 / ceiling
            line += f"  {added:+7.0f}" if variant != "bare" else f"  {'':7}"
            if key in result.to_raw:
                met = "met" if result.to_raw[key] >= TARGET_RATIO else "MISSED"
                line += f"  target vs raw >= {TARGET_RATIO}: {met}"
            print(line)
    for (variant, connections), check in result.checks.items():
        in_flight = check.answered - check.completed
        state = "ok" if not check.problems else "PROBLEMS"
        stored = "" if variant == "bare" else f", {check.stored} stored, {check.spooled} spooled"
        print(
            f"  check {variant:<6} {connections:>2}: {check.answered} answered 2xx "
            f"({in_flight:+d} in flight at {check.runs} wrk stops){stored}: {state}"
        )
        for problem in check.problems:
            print(f"    {problem}")
    for store, summary in result.verified.items():
        print(f"  verify {store}: {summary}")


# --- In process ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProfileRow:
    """A function of the profile: microseconds per decision, of its own and inclusive."""

    label: str
    own: float
    inclusive: float


@dataclass(frozen=True, slots=True)
class InProcess:
    """What one decision costs ``ConsentMiddleware`` called directly, in microseconds."""

    store: str
    wall: float
    cpu: float  # the whole process (SQLite's commits run in a worker thread)
    loop_cpu: float  # the event loop's thread
    by_module: list[ProfileRow]  # own time per module
    by_inclusive: list[ProfileRow]  # consentgate's own functions


def decision_scope(prefix: str) -> Scope:
    """Return the scope of wrk's decision request (same headers, loopback client)."""
    body = DECISION_BODY.encode()
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"user-agent", USER_AGENT.encode()),
        (b"referer", REFERER.encode()),
        (b"accept-language", b"de-DE,de;q=0.9,en;q=0.8"),
    ]
    path = prefix + "/decision"
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def drive(app: ASGIApp, scope: Scope, count: int, concurrency: int) -> None:
    """Make ``count`` decisions through ``app``, ``concurrency`` clients one after another."""
    body = DECISION_BODY.encode()
    forever = asyncio.Event()

    async def one() -> None:
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await forever.wait()  # nothing more: the client neither sends nor goes away
            return {"type": "http.disconnect"}

        status: list[int] = []

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(dict(scope), receive, send)
        if status != [200]:
            raise RuntimeError(f"in-process decision answered {status}")

    async def client(decisions: int) -> None:
        for _ in range(decisions):
            await one()

    await asyncio.gather(*(client(count // concurrency) for _ in range(concurrency)))


def _module(filename: str, function: str) -> str:
    """Return where a profiled function lives: ``package/module.py``, or the built-in."""
    if filename == "~":
        return function.removeprefix("<").removesuffix(">")
    return "/".join(Path(filename).parts[-2:])


def profile_rows(
    profile: cProfile.Profile, count: int, loop_cpu: float
) -> tuple[list[ProfileRow], list[ProfileRow]]:
    """Return the own time per module and consentgate's functions by inclusive time.

    Microseconds per decision, scaled so the own times add up to the unprofiled CPU time of
    the event loop's thread: cProfile's overhead is per call, so this is approximate.
    """
    entries = cast(
        dict[tuple[str, int, str], tuple[int, int, float, float, Any]],
        getattr(pstats.Stats(profile), "stats"),  # noqa: B009 - an untyped attribute
    )
    total = sum(own for _, _, own, _, _ in entries.values())
    scale = loop_cpu / total if total else 0.0  # profiled seconds -> µs per decision
    modules: dict[str, float] = {}
    ours = []
    for (filename, _, function), (_, _, own, inclusive, _) in entries.items():
        module = _module(filename, function)
        modules[module] = modules.get(module, 0.0) + own * scale
        if "/consentgate/" in filename:
            label = f"{module}:{function}"
            ours.append(ProfileRow(label, own * scale, inclusive * scale))
    by_module = [ProfileRow(name, own, own) for name, own in modules.items()]
    by_module.sort(key=lambda row: -row.own)
    ours.sort(key=lambda row: -row.inclusive)
    return by_module[:PROFILE_ROWS], ours[:PROFILE_ROWS]


async def in_process(store: str, url: str, folder: Path) -> InProcess:
    """Time and profile decisions through ``ConsentMiddleware`` on the ledger at ``url``."""
    _, settings = write_settings(folder, f"in-process-{store}", url)
    middleware = ConsentMiddleware(Starlette(), settings=settings)
    scope = decision_scope(settings.prefix)
    count, concurrency = DRIVER_DECISIONS, DRIVER_CONCURRENCY
    try:
        await drive(middleware, scope, 10 * concurrency, concurrency)  # starts the ledger
        samples = []
        for _ in range(DRIVER_REPEATS):
            wall, cpu, loop = time.perf_counter(), time.process_time(), time.thread_time()
            await drive(middleware, scope, count, concurrency)
            samples.append(
                (
                    (time.process_time() - cpu) / count * 1e6,
                    (time.perf_counter() - wall) / count * 1e6,
                    (time.thread_time() - loop) / count * 1e6,
                )
            )
        cpu_us, wall_us, loop_us = min(samples)
        profile = cProfile.Profile(time.thread_time)
        profile.enable()
        await drive(middleware, scope, count, concurrency)
        profile.disable()
    finally:
        await middleware.ledger.stop()
        await middleware.store.close()
    by_module, by_inclusive = profile_rows(profile, count, loop_us)
    return InProcess(store, wall_us, cpu_us, loop_us, by_module, by_inclusive)


def per_call(settings: Settings) -> dict[str, float]:
    """Microseconds per call of what a decision does once (min of repeats)."""
    draft = sample_draft(settings)
    codec = CookieCodec(settings)
    granted = tuple(sorted(settings.optional_service_ids))
    calls: dict[str, Callable[[], object]] = {
        # What the stores do per record: seal it and encode its stored form.
        "ConsentRecord.seal_stored": lambda: ConsentRecord.seal_stored(
            draft, seq=1, prev_hash="0" * 64
        ),
        "CookieCodec.encode": lambda: codec.encode(draft.consent_id, granted),
    }
    number = 5000
    return {
        name: min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6
        for name, call in calls.items()
    }


def where_time_goes(folder: Path, redis: RedisServer) -> tuple[list[InProcess], dict[str, float]]:
    """Run the in-process part on the servers' CPU; return its figures and per-call costs."""
    cpus = os.sched_getaffinity(0) if SERVER_CPUS else set()
    if SERVER_CPUS:
        os.sched_setaffinity(0, SERVER_CPUS)
    try:
        urls = {
            "sqlite": f"sqlite:///{folder / 'in-process.db'}",
            "redis": f"{redis.url}?key_prefix=inprocess",
        }
        results = [asyncio.run(in_process(store, url, folder)) for store, url in urls.items()]
        calls = per_call(write_settings(folder, "per-call", urls["sqlite"])[1])
    finally:
        if cpus:
            os.sched_setaffinity(0, cpus)
    return results, calls


def print_in_process(
    results: Sequence[InProcess], calls: dict[str, float], decisions: Decisions | None
) -> None:
    """Print where a decision's time goes."""
    pinned = f" on CPU {min(SERVER_CPUS)}" if SERVER_CPUS else ""
    print(
        f"where a decision's time goes: ConsentMiddleware called directly{pinned} (raw ASGI, "
        f"{DRIVER_CONCURRENCY} at a time, no HTTP server), best of {DRIVER_REPEATS} x "
        f"{DRIVER_DECISIONS}"
    )
    print(f"  {'µs per decision':<36}{'wall':>7}{'CPU':>7}{'loop thread':>13}{'other threads':>15}")
    for result in results:
        other = max(result.cpu - result.loop_cpu, 0.0)
        print(
            f"  {result.store:<36}{result.wall:7.0f}{result.cpu:7.0f}{result.loop_cpu:13.0f}"
            f"{other:15.0f}"
        )
    if decisions is not None:
        for connections in CONNECTIONS:
            rate = decisions.endpoint[("bare", connections)]
            print(
                f"  the ceiling server's whole request (uvicorn, h11, Starlette) at "
                f"{connections} conn.: {1e6 / rate:.0f} µs"
            )
    print("  per call: " + ", ".join(f"{name} {us:.1f} µs" for name, us in calls.items()))
    for result in results:
        print(
            f"  {result.store}: the event loop thread's profile (cProfile on a CPU clock, "
            "scaled to the unprofiled CPU; approximate)"
        )
        print(f"    {'own µs':>7}  {'by module':<48}{'incl. µs':>8}  consentgate's functions")
        for module, inclusive in zip(result.by_module, result.by_inclusive, strict=False):
            print(
                f"    {module.own:7.1f}  {module.label[:46]:<48}{inclusive.inclusive:8.1f}  "
                f"{inclusive.label}"
            )


# --- Export and verify --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Step:
    """One command of the export part: wall seconds, peak RSS, output size, check."""

    store: str
    name: str
    seconds: float
    peak_mb: float | None
    output_mb: float | None
    note: str
    targeted: bool = True


@dataclass(frozen=True, slots=True)
class Child:
    """What a child process did."""

    seconds: float
    peak_mb: float
    status: int
    stdout: str
    stderr: str


#: Starts the measured command and reports its wall time and peak RSS. A child's
#: ``ru_maxrss`` starts at the RSS of the process it was forked from (Linux carries the
#: old address space's high-water mark over ``exec``), so the command is started from this
#: small interpreter, not from the benchmark's, which has grown large by then.
_LAUNCHER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
process = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(process.pid, 0)
seconds = time.perf_counter() - started
process.returncode = code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as out:
    json.dump({"seconds": seconds, "maxrss_kb": usage.ru_maxrss, "status": code}, out)
"""


def run_child(command: Sequence[str], cwd: Path) -> Child:
    """Run ``command`` in a fresh child; its wall time and its own peak RSS."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryDirectory() as tmp,
    ):
        report = Path(tmp) / "report.json"
        env = {k: v for k, v in os.environ.items() if k != "CONSENTGATE_CONFIG"}
        subprocess.run(  # noqa: S603
            [sys.executable, "-c", _LAUNCHER, str(report), *command],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            check=True,
        )
        measured = json.loads(report.read_text(encoding="utf-8"))
        out.seek(0)
        err.seek(0)
        return Child(
            seconds=float(measured["seconds"]),
            peak_mb=int(measured["maxrss_kb"]) * 1024 / 1e6,  # kilobytes on Linux
            status=int(measured["status"]),
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )


def count_lines(path: Path) -> int:
    """Return the number of ``\\n`` in the file at ``path``."""
    lines = 0
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines


def cli(url: str, *args: str) -> list[str]:
    """Return the command line of ``consentgate --store URL ARGS`` in this interpreter."""
    return [sys.executable, "-m", "consentgate.middleware.cli", "--store", url, *args]


def export_steps(store: str, url: str, records: int, folder: Path) -> list[Step]:
    """Export as JSON Lines and CSV and verify the ledger at ``url``; check each output."""
    steps = []
    for fmt in ("jsonl", "csv"):
        output = folder / f"export-{store}.{fmt}"
        child = run_child(cli(url, "export", "--format", fmt, "-o", str(output)), folder)
        if child.status != 0:
            note = f"FAILED ({child.status}): {child.stderr.strip()[-300:]}"
            steps.append(Step(store, f"export {fmt}", child.seconds, child.peak_mb, None, note))
            continue
        lines = count_lines(output)
        expected = records + (1 if fmt == "csv" else 0)  # the CSV header
        note = f"{lines} lines" + ("" if lines == expected else f", EXPECTED {expected}")
        size = output.stat().st_size / 1e6
        output.unlink()
        steps.append(Step(store, f"export {fmt}", child.seconds, child.peak_mb, size, note))
    child = run_child(cli(url, "verify"), folder)
    summary = child.stdout.strip().splitlines()[0] if child.stdout.strip() else child.stderr
    intact = child.status == 0 and summary.startswith(f"chain intact: {records} records")
    note = summary if intact else f"FAILED ({child.status}): {summary.strip()[-300:]}"
    steps.append(Step(store, "verify", child.seconds, child.peak_mb, None, note))
    return steps


def fill_redis(url: str, records: int) -> None:
    """Append ``records`` drafts of ``bench.ledger_fill`` through ``append_many`` batches."""

    async def fill() -> None:
        store = open_store(url)
        try:
            batch: list[RecordDraft] = []
            for draft in drafts(records):
                batch.append(draft)
                if len(batch) == REDIS_FILL_BATCH:
                    await store.append_many(batch)
                    batch = []
            if batch:
                await store.append_many(batch)
        finally:
            await store.close()

    asyncio.run(fill())


def export_and_verify(records: int, folder: Path) -> list[Step]:
    """Fill a SQLite and a Redis ledger with ``records`` records; export and verify both."""
    idle = run_child([*cli("sqlite:///unused.db"), "--help"], folder)
    steps = [Step("-", "consentgate --help (imports only)", idle.seconds, idle.peak_mb, None, "")]
    path = folder / "filled.db"
    started = time.perf_counter()
    fill_sqlite(path, records)
    fill_note = f"bench.ledger_fill.fill_sqlite, {records / (time.perf_counter() - started):.0f}/s"
    steps.append(
        Step("sqlite", "fill", time.perf_counter() - started, None, None, fill_note, False)
    )
    steps += export_steps("sqlite", f"sqlite:///{path}", records, folder)
    path.unlink()
    for extra in ("-wal", "-shm"):
        Path(f"{path}{extra}").unlink(missing_ok=True)
    with redis_server(folder / "redis-export", set()) as server:
        started = time.perf_counter()
        fill_redis(server.url, records)
        elapsed = time.perf_counter() - started
        note = f"append_many of {REDIS_FILL_BATCH} over 16 chains, {records / elapsed:.0f}/s"
        steps.append(Step("redis", "fill", elapsed, None, None, note, False))
        steps += export_steps("redis", server.url, records, folder)
    return steps


def print_export(steps: Sequence[Step], records: int) -> None:
    """Print the export and verify table."""
    print(
        f"ledger export and verify: {records:,} records, each command in a fresh child process "
        "(wall time, the command's own peak RSS)"
    )
    print(
        f"  {'':<34}{'seconds':>8}  {'peak MB':>8}  {'file MB':>8}  "
        f"(target <= {TARGET_SECONDS:g} s, <= {TARGET_MB:g} MB)"
    )
    for step in steps:
        peak = f"{step.peak_mb:8.1f}" if step.peak_mb is not None else f"{'':8}"
        size = f"{step.output_mb:8.1f}" if step.output_mb is not None else f"{'':8}"
        verdict = ""
        if step.targeted and step.store != "-" and step.peak_mb is not None:
            met = step.seconds <= TARGET_SECONDS and step.peak_mb <= TARGET_MB
            verdict = "met" if met else "MISSED"
        label = f"{step.store}, {step.name}" if step.store != "-" else step.name
        print(f"  {label:<34}{step.seconds:8.1f}  {peak}  {size}  {verdict:<6} {step.note}")


# --- Main ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Figures:
    """What the benchmark measured; a part not run is ``None``."""

    decisions: Decisions | None
    in_process: list[InProcess] | None
    export: list[Step] | None


def main(argv: Sequence[str] | None = None) -> Figures:
    """Run the ledger benchmark, print its tables and return the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__)
    parser.add_argument("--records", type=int, default=RECORDS, help="records to export")
    parser.add_argument("--only", choices=("http", "export"), help="run only one part")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds")
    parser.add_argument("--seconds", type=int, default=SECONDS, help="seconds per run")
    args = parser.parse_args(argv)
    if args.records < 1 or args.rounds < 1 or args.seconds < 1:
        parser.error("--records, --rounds and --seconds must be at least 1")
    decisions: Decisions | None = None
    steps: list[Step] | None = None
    profiles: list[InProcess] | None = None
    with tempfile.TemporaryDirectory(prefix="consentgate-ledger-") as tmp:
        folder = Path(tmp)
        if args.only != "export":
            with redis_server(folder / "redis-decisions", REDIS_CPUS) as redis:
                if shutil.which("wrk") is None:
                    print(
                        "ledger decisions: `wrk` is not on the PATH (apt-get install wrk); skipped"
                    )
                else:
                    cpus = os.sched_getaffinity(0) if LOAD_CPUS else set()
                    if LOAD_CPUS:
                        # wrk inherits this process's CPUs; the servers go to SERVER_CPUS.
                        os.sched_setaffinity(0, LOAD_CPUS)
                    try:
                        decisions = decisions_per_second(folder, redis, args.rounds, args.seconds)
                    finally:
                        if cpus:
                            os.sched_setaffinity(0, cpus)
                    print_decisions(decisions, args.rounds, args.seconds)
                profiles, calls = where_time_goes(folder, redis)
            print_in_process(profiles, calls, decisions)
        if args.only != "http":
            steps = export_and_verify(args.records, folder)
            print_export(steps, args.records)
    return Figures(decisions, profiles, steps)


if __name__ == "__main__":
    main()
