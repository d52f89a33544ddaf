"""Daily access-log files: written off the event loop, safe across processes, swept on time.

A request only appends a tuple to an in-memory queue. One background thread per process
formats the queued entries, appends them to ``access-YYYY-MM-DD.log`` (UTC day of the
request) and deletes expired files. Several worker processes may write the same file:
each batch of whole lines goes in with one ``write`` on an ``O_APPEND`` descriptor under
an exclusive ``flock``, so lines never interleave; a batch the disk cannot take is cut
back off the file, counted as dropped and reported, and the response never waits.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import functools
import json
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from consentgate.config import AccessLogSettings
from consentgate.middleware.useragent import browser_summary

logger = logging.getLogger("consentgate.access_log")

#: The files the sweep may delete; nothing else in the directory is ever touched.
FILE_PATTERN = re.compile(r"^access-(\d{4})-(\d{2})-(\d{2})\.(?:log|jsonl)(?:\.gz)?$")
#: How long the writer waits for more lines before writing what it has.
FLUSH_SECONDS = 0.25
#: A batch is written early once this many lines are queued.
BATCH_LINES = 2048
#: Disk-full warnings are repeated at most this often.
WARN_EVERY_SECONDS = 60.0

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Apache's ap_escape_logitem: quote, backslash and anything unprintable become escapes.
_UNSAFE = re.compile(rb'[^\x20-\x7e]|["\\]')
_ADDRESS = re.compile(r"^[0-9a-fA-F:.]{2,45}$")
# A referrer's host: a name or IPv4 address, or a bracketed IPv6 address; then a port.
_ORIGIN_HOST = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?|\[[0-9a-f:.]+\])(?::\d{1,5})?$"
)


class Entry(NamedTuple):
    """One request as the middleware hands it over; turned into a line by the writer."""

    time: float
    client: str | None
    method: str
    path: bytes
    query: bytes
    http_version: str
    status: int
    size: int
    referrer: bytes | None
    user_agent: bytes | None


@dataclass(frozen=True)
class LogStats:
    """Counters of one process's access log."""

    written: int
    dropped: int
    queued: int
    last_error: str | None


class AccessLogError(Exception):
    """The access-log directory cannot be used."""


class AccessLog:
    """The access log of one process: a bounded queue, a writer thread, retention sweeps.

    ``add`` never blocks and never raises. ``start`` (idempotent) starts the thread, which
    sweeps at once and then every ``sweep_interval_minutes``; ``close`` writes what is
    queued and stops it. ``clock`` returns seconds since the epoch (tests inject one).
    """

    def __init__(
        self,
        settings: AccessLogSettings,
        *,
        clock: Callable[[], float] = time.time,
        sweep_every: float | None = None,
    ) -> None:
        if settings.directory is None:
            raise AccessLogError("access_log.directory is not set; name a folder for the logs")
        self.settings = settings
        self.directory = Path(settings.directory)
        self.clock = clock
        self.sweep_every = (
            sweep_every if sweep_every is not None else settings.sweep_interval_minutes * 60.0
        )
        self.suffix = ".jsonl" if settings.format == "jsonl" else ".log"
        self._format = format_jsonl if settings.format == "jsonl" else format_combined
        self._keep_query = settings.keep_query
        self._limit = settings.buffer_lines
        self._queue: collections.deque[Entry] = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._files: dict[str, tuple[int, int, int]] = {}  # day -> (fd, device, inode)
        self._flushing = threading.Lock()
        self._written = 0
        self._dropped_full_queue = 0  # counted on the event loop's thread
        self._dropped = 0  # counted on the writer's thread
        self._last_error: str | None = None
        self._last_warning = 0.0
        self.pid = 0
        """The process whose writer thread runs (0: none started in this process)."""
        _LOGS.add(self)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AccessLogError(
                f"access_log.directory {str(self.directory)!r} cannot be created: {exc.strerror}"
            ) from None
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise AccessLogError(
                f"access_log.directory {str(self.directory)!r} is not writable by this process"
            )

    def __repr__(self) -> str:
        return f"AccessLog(directory={str(self.directory)!r}, format={self.settings.format!r})"

    def _after_fork(self) -> None:
        """Reset what a forked worker must not share with its parent (threads, locks, fds).

        Each process needs its own descriptors: ``flock`` locks belong to the open file
        description, so a shared one would not keep parent and child apart. Entries queued
        before the fork stay with the parent, which writes them.
        """
        self._queue = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        for fd, _, _ in self._files.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._files = {}
        self._written = self._dropped = self._dropped_full_queue = 0
        self.pid = 0

    def add(self, entry: Entry) -> None:
        """Queue one request's entry; drop (and count) it when the queue is full."""
        if len(self._queue) >= self._limit:
            self._dropped_full_queue += 1
            return
        self._queue.append(entry)
        if len(self._queue) >= BATCH_LINES:
            self._wake.set()

    def start(self) -> None:
        """Start the writer thread (sweeping at once); does nothing if it runs already."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self.pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, name="consentgate-access-log", daemon=True
            )
            self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the writer thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Write everything queued, stop the thread and close the files."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            self._wake.set()
            thread.join()
        with self._flushing:
            self._flush()
            for fd, _, _ in self._files.values():
                os.close(fd)
            self._files.clear()

    def stats(self) -> LogStats:
        """Return how many lines were written, dropped and are waiting."""
        dropped = self._dropped + self._dropped_full_queue
        return LogStats(self._written, dropped, len(self._queue), self._last_error)

    def sweep(self) -> list[Path]:
        """Delete this log's expired files now; return what was deleted."""
        today = datetime.fromtimestamp(self.clock(), UTC).date()
        return sweep(self.directory, self.settings.retention_days, today)

    def flush(self) -> None:
        """Write every queued entry now (the writer thread calls this; so may tests)."""
        with self._flushing:
            self._flush()

    def _flush(self) -> None:
        entries: list[Entry] = []
        queue = self._queue
        while queue:
            try:
                entries.append(queue.popleft())
            except IndexError:
                break
        if not entries:
            return
        days: dict[str, list[str]] = {}
        stamp = _Stamps()
        for entry in entries:
            try:
                day, when = stamp(entry.time)
                days.setdefault(day, []).append(self._format(entry, when, self._keep_query))
            except Exception:  # one odd entry must not take the batch with it
                self._dropped += 1
                logger.exception("access log: an entry could not be formatted; dropped")
        for day, lines in days.items():
            self._append(day, "".join(lines).encode("utf-8"), len(lines))

    def _run(self) -> None:
        next_sweep = 0.0
        interval = self.sweep_every
        while True:
            now = time.monotonic()
            if now >= next_sweep:
                try:
                    deleted = self.sweep()
                    if deleted:
                        logger.info("deleted %d expired access log file(s)", len(deleted))
                except OSError as exc:
                    logger.warning("access log sweep failed: %s", exc.strerror)
                next_sweep = now + interval
            try:
                self.flush()
            except Exception:  # the thread must survive anything a line can throw
                logger.exception("access log writer failed")
            if self._stop.is_set():
                return
            self._wake.wait(min(FLUSH_SECONDS, max(next_sweep - time.monotonic(), 0.0)))
            self._wake.clear()

    def _append(self, day: str, data: bytes, lines: int) -> None:
        """Append whole lines to the day's file under an exclusive lock, all or nothing."""
        try:
            fd = self._open(day)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                start = os.lseek(fd, 0, os.SEEK_END)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                except OSError:
                    # Take a partly written batch back off: no torn line stays behind.
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, start)
                    raise
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as exc:
            self._dropped += lines
            self._last_error = f"{exc.strerror or exc} ({errno.errorcode.get(exc.errno or 0, '')})"
            now = time.monotonic()
            if now - self._last_warning >= WARN_EVERY_SECONDS:
                self._last_warning = now
                logger.warning(
                    "access log: %d line(s) dropped, cannot write %s: %s (%d dropped so far)",
                    lines,
                    self.path(day).name,
                    self._last_error,
                    self._dropped,
                )
            return
        self._written += lines

    def path(self, day: str) -> Path:
        """Return the file of ``day`` (``YYYY-MM-DD``)."""
        return self.directory / f"access-{day}{self.suffix}"

    def _open(self, day: str) -> int:
        """Return a descriptor for the day's file, reopened if it was moved or deleted."""
        path = self.path(day)
        known = self._files.get(day)
        if known is not None:
            fd, device, inode = known
            try:
                info = os.stat(path)
                if (info.st_dev, info.st_ino) == (device, inode):
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)
            del self._files[day]
        for other, (old, _, _) in list(self._files.items()):
            if other < day:  # yesterday's file gets no more lines once today's exists
                os.close(old)
                del self._files[other]
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        info = os.fstat(fd)
        self._files[day] = (fd, info.st_dev, info.st_ino)
        return fd


#: Every AccessLog of this process, reset in a child after ``fork`` (gunicorn --preload).
_LOGS: weakref.WeakSet[AccessLog] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for log in list(_LOGS):
        log._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def sweep(directory: str | os.PathLike[str], retention_days: int, today: date) -> list[Path]:
    """Delete the log files in ``directory`` whose day is more than ``retention_days`` ago.

    The date in the name decides, never the file's mtime: ``access-D.log`` is deleted
    once ``today > D + retention_days``. Names not matching ``FILE_PATTERN`` and
    directories are left alone; a file another process deleted first is no error.
    """
    cutoff = today - timedelta(days=retention_days)
    deleted: list[Path] = []
    for path in _expired(Path(directory), cutoff):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        deleted.append(path)
    return deleted


def expired_files(
    directory: str | os.PathLike[str], retention_days: int, today: date
) -> list[Path]:
    """Return what ``sweep`` would delete, without deleting it."""
    return list(_expired(Path(directory), today - timedelta(days=retention_days)))


def _expired(directory: Path, cutoff: date) -> Iterable[Path]:
    with os.scandir(directory) as entries:
        for item in sorted(entries, key=lambda e: e.name):
            day = file_day(item.name)
            if day is not None and day < cutoff and not item.is_dir(follow_symlinks=False):
                yield Path(item.path)


def file_day(name: str) -> date | None:
    """Return the day in a log file's name, or ``None`` if the name is not a log file's."""
    match = FILE_PATTERN.match(name)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None  # access-2026-02-30.log was not written by us


class _Stamps:
    """Turns epoch seconds into the file day and the combined-log time, once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = ("", "")

    def __call__(self, moment: float) -> tuple[str, str]:
        second = int(moment)
        if second != self._second:
            t = time.gmtime(second)
            day = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
            when = (
                f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year:04d}:"
                f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
            )
            self._second, self._value = second, (day, when)
        return self._value


def _escape(raw: bytes) -> str:
    """Escape a request-supplied value for a quoted combined-log field."""
    if _UNSAFE.search(raw) is None:
        return raw.decode("ascii")
    return _UNSAFE.sub(lambda m: f"\\x{m[0][0]:02x}".encode(), raw).decode("ascii")


@functools.lru_cache(maxsize=4096)
def _agent_field(header: bytes | None) -> str:
    """Return the combined log's user-agent field: ``Firefox/120 (Windows)``, escaped."""
    if header is None:
        return "-"
    browser = browser_summary(header.decode("latin-1"))
    if browser.major:
        return _escape(f"{browser.family}/{browser.major} ({browser.os})".encode())
    return _escape(f"{browser.family} ({browser.os})".encode())


@functools.lru_cache(maxsize=4096)
def _request_field(method: str, path: bytes, query: bytes, version: str) -> str:
    """Return the escaped request line ``GET /strom HTTP/1.1`` (sites repeat their paths)."""
    target = _target(path, query)
    return _escape(method.encode("latin-1") + b" " + target + b" HTTP/" + version.encode("latin-1"))


@functools.lru_cache(maxsize=4096)
def _client_field(client: str | None) -> str:
    """Return the address field; anything but an address (a socket name) becomes ``-``."""
    return client if client is not None and _ADDRESS.match(client) else "-"


@functools.lru_cache(maxsize=4096)
def _referrer_field(header: bytes | None) -> str:
    origin = referrer_origin(header)
    return _escape(origin.encode()) if origin else "-"


def referrer_origin(raw: bytes | None) -> str | None:
    """Return ``scheme://host[:port]`` of an http(s) ``Referer``; anything else is ``None``.

    Paths and query strings of the previous page can name a person (a search, a profile);
    the origin is what the privacy policies promise to keep.
    """
    if not raw:
        return None
    text = raw.decode("latin-1").strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return None
    end = len(rest)
    for stop in "/?#":
        index = rest.find(stop)
        if index != -1:
            end = min(end, index)
    host = rest[:end].rsplit("@", 1)[-1].lower()  # user:password@ never survives
    if not _ORIGIN_HOST.match(host):
        return None  # ";jsessionid=..." and other path data hidden before the first "/"
    return f"{scheme.lower()}://{host}"


def _target(path: bytes, query: bytes) -> bytes:
    """Return the path (cut at a ``?`` some servers leave in it) and ``query`` if given."""
    path = path.split(b"?", 1)[0]
    return path + b"?" + query if query else path


def format_combined(entry: Entry, when: str, keep_query: bool) -> str:
    """Return the NCSA combined line of ``entry``; the user-agent field is reduced.

    ``203.0.113.0 - - [21/Nov/2026:09:15:02 +0000] "GET /strom HTTP/1.1" 200 5120
    "https://www.google.com" "Firefox/120 (Windows)"``
    """
    request = _request_field(
        entry.method, entry.path, entry.query if keep_query else b"", entry.http_version
    )
    return (
        f'{_client_field(entry.client)} - - [{when}] "{request}" {entry.status} '
        f'{entry.size or "-"} "{_referrer_field(entry.referrer)}" '
        f'"{_agent_field(entry.user_agent)}"\n'
    )


def format_jsonl(entry: Entry, when: str, keep_query: bool) -> str:
    """Return the JSON Lines record of ``entry``: the same fields as the combined line."""
    referrer, agent = entry.referrer, entry.user_agent
    browser = browser_summary(agent.decode("latin-1")) if agent is not None else None
    iso = datetime.fromtimestamp(int(entry.time), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = {
        "time": iso,
        "ip": entry.client,
        "method": entry.method,
        "path": _target(entry.path, entry.query if keep_query else b"").decode("latin-1"),
        "protocol": f"HTTP/{entry.http_version}",
        "status": entry.status,
        "bytes": entry.size,
        "referrer": referrer_origin(referrer),
        "browser": browser.family if browser else None,
        "browser_version": (browser.major or None) if browser else None,
        "os": browser.os if browser else None,
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
