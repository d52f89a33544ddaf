"""The spool: decisions kept on local disk (fsync'd) while the store cannot take them.

Layout of the spool directory:

- ``spool.jsonl`` — where decisions are appended, one line each: the CRC-32 of the JSON
  in hex, a tab, the draft as JSON, a newline. Every write is ``fsync``'d before the
  visitor gets an answer, under an exclusive ``flock`` so several worker processes can
  share the directory.
- ``replay-<ns>.jsonl`` — a spool file taken over by a replay. A replay first renames
  ``spool.jsonl`` (new decisions then start a fresh one), then stores the replay files
  oldest first, in line order, and deletes each once all its lines are stored.

A crash at any point loses nothing: a replay file is only deleted after its records are
in the store, and a record that reached the store before the crash is not stored again
on the next replay, because stores skip a ``record_id`` they already hold.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from consentgate.consent.record import RecordDraft
from consentgate.consent.store import Store

logger = logging.getLogger("consentgate")

SPOOL_NAME = "spool.jsonl"
REPLAY_PREFIX = "replay-"
LOCK_NAME = "spool.lock"
REPLAY_LOCK_NAME = "replay.lock"
#: Drafts stored per ``append_many`` call during a replay.
REPLAY_BATCH = 500


class SpoolError(OSError):
    """The spool could not keep a decision (disk full, no permission)."""


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What one replay did."""

    replayed: int
    """Spooled decisions now in the store (including those that were already there)."""
    duplicates: int
    """Of those, how many the store already held (a replay cut short before); counted from
    the ledger's size, so decisions stored meanwhile by other workers can hide some."""
    remaining: int
    """Decisions still spooled (the store failed again, or another replay is running)."""
    corrupt: int = 0
    """Lines that were not a decision (a write torn by a crash); moved to ``corrupt-*.jsonl``."""
    busy: bool = False
    """Another process was replaying; this one did nothing."""


@dataclass(frozen=True, slots=True)
class SpoolDepth:
    """How many decisions wait in the spool, and since when."""

    depth: int
    oldest: str | None
    """The decision time of the oldest waiting decision (ISO 8601 UTC), if any."""


class Spool:
    """An append-only, fsync'd queue of decisions in one directory, shared by processes."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._checked_mtime: int | None = None
        self._pending = False

    def __repr__(self) -> str:
        return f"Spool({str(self.directory)!r})"

    def write(self, drafts: Sequence[RecordDraft]) -> None:
        """Append ``drafts`` durably (blocking: call from a thread); raises ``SpoolError``."""
        data = b"".join(_line(draft) for draft in drafts)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with self._lock, _locked(self.directory / LOCK_NAME):
                fd = os.open(
                    self.directory / SPOOL_NAME, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600
                )
                try:
                    size = os.fstat(fd).st_size
                    if size and os.pread(fd, 1, size - 1) != b"\n":
                        # A writer died mid-line (never acknowledged): end that fragment, so
                        # it is set aside alone and this decision stays a line of its own.
                        data = b"\n" + data
                    try:
                        _write_all(fd, data)
                        os.fsync(fd)
                    except OSError:
                        os.ftruncate(fd, size)  # no torn line left behind
                        raise
                finally:
                    os.close(fd)
                if size == 0:
                    _fsync_directory(self.directory)  # the new file's name is durable too
        except OSError as exc:
            raise SpoolError(
                exc.errno, f"cannot spool to {str(self.directory)!r}: {exc.strerror}"
            ) from exc
        self._pending = True

    def pending(self) -> bool:
        """Whether any decision waits in the spool (one ``stat`` while nothing changes)."""
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except OSError:  # missing (nothing spooled yet) or unusable (a write will say so)
            return False
        if mtime != self._checked_mtime or self._pending:
            # Files are only created, renamed and deleted here, each of which changes the
            # directory's mtime; appends to an existing file need no re-check (it exists).
            self._pending = any(_waiting(self.directory))
            self._checked_mtime = mtime
        return self._pending

    def depth(self) -> SpoolDepth:
        """Count the waiting decisions (reads the files: for health checks, not hot paths)."""
        count = 0
        oldest: str | None = None
        for path in _waiting(self.directory):
            try:
                with open(path, "rb") as lines:
                    for raw in lines:
                        draft = _parse(raw)
                        if draft is None:
                            continue
                        count += 1
                        stamp = draft.to_json()["time"]
                        if oldest is None or stamp < oldest:
                            oldest = stamp
            except FileNotFoundError:
                continue  # replayed meanwhile
        return SpoolDepth(count, oldest)

    async def replay(self, store: Store) -> ReplayReport:
        """Store every spooled decision, oldest first, exactly once; see the module doc."""
        import anyio.to_thread

        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            guard = os.open(self.directory / REPLAY_LOCK_NAME, os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SpoolError(exc.errno, f"cannot replay {str(self.directory)!r}: {exc}") from exc
        try:
            try:
                fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                depth = await anyio.to_thread.run_sync(self.depth)
                return ReplayReport(0, 0, depth.depth, busy=True)
            await anyio.to_thread.run_sync(self._take_over)
            before = await store.count()
            replayed = corrupt = 0
            for path in sorted(self.directory.glob(f"{REPLAY_PREFIX}*.jsonl")):
                offset, done = 0, 0
                bad: list[bytes] = []
                while True:  # a batch at a time: memory stays bounded however long the spool
                    drafts, torn, offset = await anyio.to_thread.run_sync(_read, path, offset)
                    bad += torn
                    if drafts:
                        await store.append_many(drafts)
                        done += len(drafts)
                    if not drafts and not torn:
                        break
                if bad:
                    corrupt += len(bad)
                    await anyio.to_thread.run_sync(self._keep_corrupt, path, bad)
                await anyio.to_thread.run_sync(_remove, path)
                replayed += done
                if done:
                    logger.info("replayed %d spooled decision(s) from %s", done, path.name)
            self._checked_mtime = None
            self._pending = False
            duplicates = max(0, replayed - (await store.count() - before)) if replayed else 0
            return ReplayReport(replayed, duplicates, 0, corrupt)
        finally:
            os.close(guard)

    def _take_over(self) -> None:
        """Rename ``spool.jsonl`` to a replay file, so writers start a fresh one."""
        with self._lock, _locked(self.directory / LOCK_NAME):
            source = self.directory / SPOOL_NAME
            if source.exists():
                os.replace(source, self.directory / f"{REPLAY_PREFIX}{time.time_ns():020d}.jsonl")
                _fsync_directory(self.directory)

    def _keep_corrupt(self, path: Path, lines: list[bytes]) -> None:
        target = self.directory / f"corrupt-{path.stem.removeprefix(REPLAY_PREFIX)}.jsonl"
        with open(target, "ab") as out:
            out.writelines(line if line.endswith(b"\n") else line + b"\n" for line in lines)
            out.flush()
            os.fsync(out.fileno())
        logger.error(
            "%d spooled line(s) were not decisions (torn by a crash?); kept in %s",
            len(lines),
            target,
        )


async def replay_directory(directory: str | os.PathLike[str], store: Store) -> ReplayReport:
    """Replay the spool in ``directory`` into ``store`` (the CLI's ``spool replay``)."""
    return await Spool(directory).replay(store)


def _line(draft: RecordDraft) -> bytes:
    text = json.dumps(draft.to_json(), ensure_ascii=False, separators=(",", ":")).encode()
    return b"%08x\t%s\n" % (zlib.crc32(text), text)


def _parse(raw: bytes) -> RecordDraft | None:
    """Return the draft of one spool line, or ``None`` if the line is torn or corrupt."""
    if not raw.endswith(b"\n"):
        return None
    crc, sep, text = raw.rstrip(b"\n").partition(b"\t")
    if not sep or crc != b"%08x" % zlib.crc32(text):
        return None
    try:
        return RecordDraft.from_json(json.loads(text))
    except ValueError:
        return None


def _read(path: Path, offset: int) -> tuple[list[RecordDraft], list[bytes], int]:
    """Read up to ``REPLAY_BATCH`` lines from ``offset``: (drafts, bad lines, next offset)."""
    drafts: list[RecordDraft] = []
    bad: list[bytes] = []
    with open(path, "rb") as lines:
        lines.seek(offset)
        while len(drafts) + len(bad) < REPLAY_BATCH:
            raw = lines.readline()
            if not raw:
                break
            draft = _parse(raw)
            if draft is None:
                bad.append(raw)
            else:
                drafts.append(draft)
        return drafts, bad, lines.tell()


def _waiting(directory: Path) -> Iterator[Path]:
    """Yield the files holding waiting decisions, oldest first."""
    try:
        names = sorted(
            entry.name
            for entry in os.scandir(directory)
            if entry.name.startswith(REPLAY_PREFIX) and entry.name.endswith(".jsonl")
        )
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in names:
        yield directory / name
    spool = directory / SPOOL_NAME
    if spool.exists():
        yield spool


def _remove(path: Path) -> None:
    path.unlink()
    _fsync_directory(path.parent)


class _locked:
    """An exclusive ``flock`` on a lock file, as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing releases the lock


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
