"""Requests per second through a real uvicorn, with and without ConsentMiddleware.

The baseline runs in the same run: the same Starlette app without middleware, served by its
own uvicorn (one worker, no access log, loopback) next to the wrapped one; ``wrk`` loads them
in turn, bare and wrapped interleaved per route and round, and the ratio is the median of
the per-round ratios. Needs ``wrk`` on the PATH (Debian/Ubuntu: ``apt-get install wrk``);
without it the benchmark says so and skips.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.e2e_apps import SETTINGS_ENV
from bench.page import bench_settings_data
from consentgate.config import Settings
from consentgate.consent import CookieCodec, new_consent_id

#: wrk parameters for a 2-core machine: one load thread, 16 connections.
THREADS = 1
CONNECTIONS = 16
SECONDS = 5
WARMUP_SECONDS = 1
ROUNDS = 3
ROOT = Path(__file__).resolve().parent.parent
#: With two or more CPUs the servers run on the last one and wrk on the others, so that the
#: scheduler does not move them onto each other's CPU between rounds.
_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
SERVER_CPUS = {_CPUS[-1]} if len(_CPUS) >= 2 else set()
LOAD_CPUS = set(_CPUS[:-1]) if len(_CPUS) >= 2 else set()

#: (label, path, send the consent cookie, target ratio wrapped/bare)
CASES = (
    ("JSON", "/json", False, 0.97),
    ("page, repeated (undecided)", "/page", False, 0.6),
    ("page, repeated (all granted)", "/page", True, None),
    ("page, unique (undecided)", "/unique", False, 0.25),
)


@dataclass(frozen=True, slots=True)
class Server:
    """A uvicorn subprocess serving one app on a loopback port."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, cookie: str | None = None) -> tuple[int, bytes]:
        """GET ``path``; return status and body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


def free_port() -> int:
    """Return a loopback TCP port that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(name: str, target: str, env: dict[str, str], folder: Path) -> Iterator[Server]:
    """Run ``uvicorn <target>`` until the block ends; wait until it answers."""
    port = free_port()
    log = folder / f"{name}.log"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        *target.split(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)  # noqa: S603
    if SERVER_CPUS:
        os.sched_setaffinity(process.pid, SERVER_CPUS)
    server = Server(name, port, process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} server exited:\n{log.read_text(errors='replace')}")
            try:
                server.get("/json")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} server did not start; see {log}") from None
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_ERRORS = re.compile(r"Socket errors:.*")
_TOTAL = re.compile(r"(\d+) requests in ")


def wrk_counts(result: subprocess.CompletedProcess[str]) -> tuple[float, int, list[str]]:
    """Read a wrk run's requests/s, completed requests and its error lines."""
    rate = _RATE.search(result.stdout)
    total = _TOTAL.search(result.stdout)
    if rate is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{result.stdout}{result.stderr}")
    problems = [
        m.group(0)
        for m in (_NON_2XX.search(result.stdout), _ERRORS.search(result.stdout))
        if m is not None
    ]
    return float(rate.group(1)), int(total.group(1)), problems


def wrk(url: str, seconds: int, cookie: str | None) -> float:
    """Load ``url`` with wrk; return requests per second."""
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s"]
    if cookie:
        command += ["-H", f"Cookie: {cookie}"]
    result = subprocess.run(  # noqa: S603
        [*command, url], capture_output=True, text=True, check=True
    )
    rate = _RATE.search(result.stdout)
    if rate is None:
        raise RuntimeError(f"unexpected wrk output:\n{result.stdout}{result.stderr}")
    problems = [m.group(0) for m in (_NON_2XX.search(result.stdout),) if m is not None]
    problems += [m.group(0) for m in (_ERRORS.search(result.stdout),) if m is not None]
    if problems:
        raise RuntimeError(f"wrk on {url}: {'; '.join(problems)}")
    return float(rate.group(1))


def check(bare: Server, wrapped: Server, cookie: str) -> str:
    """Check both servers answer every route; return a note on what the middleware did."""
    for _, path, _, _ in CASES:
        for server in (bare, wrapped):
            status, _ = server.get(path)
            if status != 200:
                raise RuntimeError(f"{server.name} {path}: HTTP {status}")
    _, plain = bare.get("/page")
    _, undecided = wrapped.get("/page")
    _, granted = wrapped.get("/page", cookie)
    marks = undecided.count(b"data-consentgate-service")
    if undecided == plain:
        return "the middleware returned /page unchanged: it does not rewrite (yet)"
    return (
        f"/page rewritten: {len(plain)} -> {len(undecided)} bytes undecided "
        f"({marks} blocked elements), {len(granted)} bytes all granted"
    )


def measure(bare: Server, wrapped: Server, cookie: str) -> list[tuple[float, float, float]]:
    """Return, per case, the median req/s of bare and wrapped and the median round ratio."""
    results = []
    for _, path, with_cookie, _ in CASES:
        sent = cookie if with_cookie else None
        for server in (bare, wrapped):
            wrk(server.url(path), WARMUP_SECONDS, sent)
        rates: dict[str, list[float]] = {"bare": [], "wrapped": []}
        ratios = []
        for _ in range(ROUNDS):
            for server in (bare, wrapped):
                rates[server.name].append(wrk(server.url(path), SECONDS, sent))
            ratios.append(rates["wrapped"][-1] / rates["bare"][-1])
        results.append(
            (
                statistics.median(rates["bare"]),
                statistics.median(rates["wrapped"]),
                statistics.median(ratios),
            )
        )
    return results


def main() -> None:
    """Run the end-to-end benchmark and print its table."""
    if shutil.which("wrk") is None:
        print("end to end: `wrk` is not on the PATH (apt-get install wrk); skipped")
        return
    cpus = os.sched_getaffinity(0) if LOAD_CPUS else set()
    if LOAD_CPUS:
        # wrk inherits this process's CPUs; the servers are moved to SERVER_CPUS.
        os.sched_setaffinity(0, LOAD_CPUS)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            data = bench_settings_data(folder)
            settings_file = folder / "settings.json"
            settings_file.write_text(json.dumps(data), encoding="utf-8")
            settings = Settings.from_mapping(data)
            value = CookieCodec(settings).encode(new_consent_id(), settings.optional_service_ids)
            cookie = f"{settings.cookie.name}={value}"
            env = {**os.environ, SETTINGS_ENV: str(settings_file)}
            with (
                serve("bare", "bench.e2e_apps:bare", env, folder) as bare,
                serve("wrapped", "--factory bench.e2e_apps:wrapped", env, folder) as wrapped,
            ):
                note = check(bare, wrapped, cookie)
                results = measure(bare, wrapped, cookie)
    finally:
        if cpus:
            os.sched_setaffinity(0, cpus)
    pinned = f", servers on CPU {min(SERVER_CPUS)}" if SERVER_CPUS else ""
    print(
        f"end to end: uvicorn (1 worker{pinned}) + wrk -t{THREADS} -c{CONNECTIONS} "
        f"-d{SECONDS}s, median of {ROUNDS} interleaved rounds"
    )
    print(f"  {note}")
    print(f"  {'':<30}{'bare req/s':>11}{'wrapped':>10}  wrapped/bare (target)")
    for (label, _, _, target), (bare_rate, rate, ratio) in zip(CASES, results, strict=True):
        goal = f" (>= {target})" if target is not None else ""
        print(f"  {label:<30}{bare_rate:11.0f}{rate:10.0f}  {ratio:.2f}{goal}")


if __name__ == "__main__":
    main()
