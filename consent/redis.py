"""The shared ledger on Redis or Redis Cluster: consent ids sharded over hash chains.

Every consent id belongs to one chain (``chain_of``); every key of a chain carries the same
hash tag, so a chain lives in one cluster slot and one Lua script can change all its keys at
once. Per chain ``c`` (``P`` the key prefix, tag ``{P-cc}``):

- ``P:{P-cc}:records`` — a stream, one entry per record, id ``<seq>-0``, fields ``body``
  (the exact hashed text) and ``hash``;
- ``P:{P-cc}:head`` — a hash: ``seq``/``hash`` of the last record appended and
  ``anchor_seq``/``anchor_hash`` of the last record purged;
- ``P:{P-cc}:ids`` — a hash record id → stream id (a retried append is stored once);
- ``P:{P-cc}:consents`` — a sorted set used as a lex index, ``<consent id>:<stream id>``;
- ``P:{P-cc}:personal`` — a hash record id → the personal fields' canonical JSON;
- ``P:{P-cc}:redacted`` — a hash record id → when those were erased.

Globally ``P:meta`` (the shard count, fixed on first use), ``P:banners``, and the tracker
audit in ``P:{P-audit}:counts`` (finding → count) and ``P:{P-audit}:seen`` (finding →
``first|last`` time), both under one hash tag so one script updates them together.

The client seals records itself (SHA-256 is not available in Lua) from its cached head of
the chain; the append script writes the batch only if the chain's head is still the one the
records were sealed after, and otherwise answers with the current head, so the client
re-seals and tries again. Two processes appending to one chain therefore never fork it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import inspect
import itertools
import json
import math
import operator
import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple, TypeVar, cast
from urllib.parse import parse_qsl, unquote

import redis.asyncio
import redis.asyncio.cluster
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

from consentgate.consent.record import (
    GENESIS_HASH,
    ChainVerifier,
    ConsentRecord,
    RecordDraft,
    StoredRecord,
    VerifyReport,
    format_time,
)
from consentgate.consent.store import (
    AUDIT_MAX_ENTRIES,
    AuditEntry,
    AuditKey,
    ProgressCallback,
    PurgeReport,
    StoreError,
    StoreUnavailable,
)

T = TypeVar("T")

DEFAULT_SHARDS = 16
MAX_SHARDS = 1024
DEFAULT_PREFIX = "consentgate"
DEFAULT_TIMEOUT = 2.0
DEFAULT_PORT = 6379
#: Stream entries fetched per round trip (iteration, verification, purge); a read keeps
#: at most two batches per chain in memory, so this bounds an export's memory.
BATCH = 250
#: How often an append is re-sealed after losing a race for a chain's head.
MAX_TRIES = 100
#: Drafts of concurrent appends to one chain combined into one script call (at most).
GROUP_LIMIT = 1000
#: ``verify`` reports progress every this many records.
PROGRESS_EVERY = 5000

_PREFIX_FORM = re.compile(r"[A-Za-z0-9_-]+")
_SCHEMES = {
    "redis": (False, False),
    "rediss": (False, True),
    "redis+cluster": (True, False),
    "rediss+cluster": (True, True),
}
_URL_FORMS = (
    "redis://[user:password@]host:6379/0, rediss://..., "
    "redis+cluster://host:7000,host:7001 or rediss+cluster://..."
)

# -- Lua ------------------------------------------------------------------------------------
# Keys of a chain, in this order, for every script: records, head, ids, consents, personal,
# redacted.

_APPEND = """
local head = redis.call('HMGET', KEYS[2], 'seq', 'hash', 'anchor_seq', 'anchor_hash')
local cur_seq = head[1] or head[3] or '0'
local cur_hash = head[2] or head[4] or string.rep('0', 64)
local n = tonumber(ARGV[3])
local reply = {'retry', cur_seq, cur_hash}
for i = 0, n - 1 do
  local rid = ARGV[4 + i * 6]
  local sid = redis.call('HGET', KEYS[3], rid)
  if sid then
    reply[#reply + 1] = rid
    reply[#reply + 1] = sid
  end
end
if #reply > 3 or cur_seq ~= ARGV[1] or cur_hash ~= ARGV[2] then
  return reply
end
-- A key of the wrong type fails here, before anything is written.
redis.call('XLEN', KEYS[1])
redis.call('ZCARD', KEYS[4])
redis.call('HLEN', KEYS[5])
local ids, personal, index = {}, {}, {}
for i = 0, n - 1 do
  local b = 4 + i * 6
  local sid = ARGV[b + 2] .. '-0'
  -- The first XADD is the only write that can still fail (a stream id not above the top);
  -- it fails before any other write of the batch.
  redis.call('XADD', KEYS[1], sid, 'body', ARGV[b + 3], 'hash', ARGV[b + 4])
  ids[#ids + 1] = ARGV[b]
  ids[#ids + 1] = sid
  personal[#personal + 1] = ARGV[b]
  personal[#personal + 1] = ARGV[b + 5]
  index[#index + 1] = 0
  index[#index + 1] = ARGV[b + 1] .. ':' .. sid
end
for s = 1, #ids, 2000 do
  local e = math.min(s + 1999, #ids)
  redis.call('HSET', KEYS[3], unpack(ids, s, e))
  redis.call('HSET', KEYS[5], unpack(personal, s, e))
  redis.call('ZADD', KEYS[4], unpack(index, s, e))
end
local last = 4 + (n - 1) * 6
redis.call('HSET', KEYS[2], 'seq', ARGV[last + 2], 'hash', ARGV[last + 4])
return {'ok'}
"""

_PURGE = """
local anchor = tonumber(redis.call('HGET', KEYS[2], 'anchor_seq') or '0')
if tonumber(ARGV[1]) <= anchor then
  return 0
end
local n = tonumber(ARGV[3])
local removed = 0
for i = 0, n - 1 do
  local b = 4 + i * 3
  removed = removed + redis.call('XDEL', KEYS[1], ARGV[b])
  redis.call('HDEL', KEYS[3], ARGV[b + 1])
  redis.call('HDEL', KEYS[5], ARGV[b + 1])
  redis.call('HDEL', KEYS[6], ARGV[b + 1])
  redis.call('ZREM', KEYS[4], ARGV[b + 2])
end
redis.call('HSET', KEYS[2], 'anchor_seq', ARGV[1], 'anchor_hash', ARGV[2])
return removed
"""

_ERASE = """
local cid = ARGV[1]
local members = redis.call('ZRANGEBYLEX', KEYS[4], '[' .. cid .. ':', '(' .. cid .. ';')
local erased = 0
for _, member in ipairs(members) do
  local owner, sid = string.match(member, '^(.*):([^:]*)$')
  if owner == cid then
    local entry = redis.call('XRANGE', KEYS[1], sid, sid)[1]
    if entry then
      local fields = entry[2]
      for j = 1, #fields, 2 do
        if fields[j] == 'body' then
          local ok, values = pcall(cjson.decode, fields[j + 1])
          local rid = ok and type(values) == 'table' and values['record_id']
          if type(rid) == 'string' and redis.call('HDEL', KEYS[5], rid) == 1 then
            redis.call('HSET', KEYS[6], rid, ARGV[2])
            erased = erased + 1
          end
        end
      end
    end
  end
end
return erased
"""

# KEYS: counts, seen. ARGV: max entries, time, then finding, count pairs. A finding already
# kept counts on; a new one is kept only while fewer than max are.
_AUDIT = """
local size = redis.call('HLEN', KEYS[1])
local limit = tonumber(ARGV[1])
for i = 3, #ARGV, 2 do
  local finding = ARGV[i]
  local seen = redis.call('HGET', KEYS[2], finding)
  if seen then
    redis.call('HINCRBY', KEYS[1], finding, ARGV[i + 1])
    redis.call('HSET', KEYS[2], finding, string.match(seen, '^[^|]*') .. '|' .. ARGV[2])
  elseif size < limit then
    redis.call('HSET', KEYS[1], finding, ARGV[i + 1])
    redis.call('HSET', KEYS[2], finding, ARGV[2] .. '|' .. ARGV[2])
    size = size + 1
  end
end
return size
"""


def chain_of(consent_id: str, shards: int) -> int:
    """Return the chain (0 .. shards-1) the records of ``consent_id`` go to."""
    return zlib.crc32(consent_id.encode()) % shards


@dataclass(frozen=True, slots=True)
class _Keys:
    """The keys of one chain."""

    records: str
    head: str
    ids: str
    consents: str
    personal: str
    redacted: str

    @property
    def all(self) -> list[str]:
        return [self.records, self.head, self.ids, self.consents, self.personal, self.redacted]


class _Rows(NamedTuple):
    """Stream entries picked for reading, column by column."""

    seqs: list[int]
    times: list[str]
    bodies: list[str]
    digests: list[str]
    rids: list[bytes]


@dataclass(slots=True)
class _Pending:
    """Drafts waiting for a chain's writer, and who waits for their records."""

    drafts: list[RecordDraft]
    future: asyncio.Future[list[ConsentRecord]]


Client = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
#: A stream entry as XRANGE sends it: ``[id, [field, value, ...]]``.
RawEntry = tuple[str, list[str]]


class RedisStore:
    """A ledger on one Redis server or a Redis Cluster, its records on ``shards`` chains."""

    def __init__(
        self,
        nodes: Sequence[tuple[str, int]],
        *,
        cluster: bool = False,
        tls: bool = False,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        shards: int = DEFAULT_SHARDS,
        key_prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        _check_options(shards, key_prefix, timeout)
        if not nodes:
            raise ValueError("a Redis store needs at least one host:port")
        if not cluster and len(nodes) > 1:
            raise ValueError("several hosts make a cluster: use redis+cluster://h1:p1,h2:p2")
        if cluster and db:
            raise ValueError("Redis Cluster has only database 0")
        self.shards = shards
        self.key_prefix = key_prefix
        self.timeout = timeout
        self._cluster = cluster
        self._password = password
        scheme = ("rediss" if tls else "redis") + ("+cluster" if cluster else "")
        user = f"{username or ''}:***@" if password else (f"{username}@" if username else "")
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in nodes)
        self._safe_url = f"{scheme}://{user}{hosts}" + ("" if cluster else f"/{db}")
        # Fail fast: the caller spools decisions while the ledger is unreachable. One retry,
        # at once, for a pooled connection the server dropped; none after a timeout.
        retry = Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,))
        options: dict[str, Any] = {
            "username": username,
            "password": password,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "decode_responses": True,
            "retry": retry,
        }
        if tls:
            options["ssl"] = True
        self._client: Client
        if cluster:
            startup = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in nodes]
            self._client = redis.asyncio.cluster.RedisCluster(startup_nodes=startup, **options)
        else:
            host, port = nodes[0]
            self._client = redis.asyncio.Redis(host=host, port=port, db=db, **options)
        self._append_script: AsyncScript = self._client.register_script(_APPEND)
        self._purge_script: AsyncScript = self._client.register_script(_PURGE)
        self._erase_script: AsyncScript = self._client.register_script(_ERASE)
        self._audit_script: AsyncScript = self._client.register_script(_AUDIT)
        # Stream entries stay raw ([id, [field, value, ...]]): building dicts for a million
        # entries would cost more than reading them.
        self._client.set_response_callback("XRANGE", _raw_reply)
        self._client.set_response_callback("XREVRANGE", _raw_reply)
        self._meta = f"{key_prefix}:meta"
        self._banners = f"{key_prefix}:banners"
        self._audit_keys = [
            f"{key_prefix}:{{{key_prefix}-audit}}:counts",
            f"{key_prefix}:{{{key_prefix}-audit}}:seen",
        ]
        self._keys = [self._chain_keys(chain) for chain in range(shards)]
        self._meta_checked = False
        self._closing = False
        self._closed = False
        self._heads: dict[int, tuple[int, str]] = {}
        self._queues: dict[int, list[_Pending]] = {}
        self._writers: dict[int, asyncio.Task[None]] = {}

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """Open the store a ``redis://``, ``rediss://``, ``redis+cluster://`` or
        ``rediss+cluster://`` URL names (see the module doc); raises ``ValueError`` on bad
        URLs without echoing credentials."""
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in _SCHEMES:
            raise ValueError(f"store URL scheme {scheme!r} is not a Redis one; use {_URL_FORMS}")
        cluster, tls = _SCHEMES[scheme]
        # Only the password may hold '@' ('@' is no query value here), so the last one ends it.
        userinfo, at, rest = rest.rpartition("@")
        username: str | None = None
        password: str | None = None
        if at:
            user, colon, secret = userinfo.partition(":")
            if not colon:
                raise ValueError(
                    "store URL credentials must be written user:password@ or :password@"
                )
            username, password = unquote(user) or None, unquote(secret) or None
        rest, _, fragment = rest.partition("#")
        if fragment:
            raise ValueError("a Redis store URL takes no #fragment")
        rest, _, query = rest.partition("?")
        netloc, _, path = rest.partition("/")
        nodes = [_parse_node(item) for item in netloc.split(",")] if netloc else []
        if not nodes:
            raise ValueError(f"store URL names no host; use {_URL_FORMS}")
        db = 0
        if cluster:
            if path not in ("", "0"):
                raise ValueError("a Redis Cluster store URL takes no database (cluster has only 0)")
        else:
            if len(nodes) > 1:
                raise ValueError(
                    "several hosts are a cluster: use redis+cluster://host:7000,host:7001"
                )
            if path:
                if not path.isdigit() or not path.isascii():
                    raise ValueError(f"database {path!r} is not a number; use redis://host:6379/0")
                db = int(path)
        options = _parse_query(query)
        return cls(
            nodes,
            cluster=cluster,
            tls=tls,
            db=db,
            username=username,
            password=password,
            **options,
        )

    def __repr__(self) -> str:
        return f"RedisStore({self._safe_url!r}, shards={self.shards})"

    # -- keys and errors --------------------------------------------------------------------

    def _chain_keys(self, chain: int) -> _Keys:
        base = f"{self.key_prefix}:{{{self.key_prefix}-{chain:02d}}}:"
        return _Keys(
            records=base + "records",
            head=base + "head",
            ids=base + "ids",
            consents=base + "consents",
            personal=base + "personal",
            redacted=base + "redacted",
        )

    def _message(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        if self._password:
            text = text.replace(self._password, "***")
        if len(text) > 200:
            text = text[:197] + "..."
        return text

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn redis-py's errors into ``StoreUnavailable`` / ``StoreError``."""
        if self._closed:
            raise StoreError(f"{self!r} is closed")
        try:
            yield
        except (
            redis.exceptions.ConnectionError,
            redis.exceptions.TimeoutError,
            redis.exceptions.ClusterDownError,
            redis.exceptions.TryAgainError,
            redis.exceptions.RedisClusterException,
            OSError,
        ) as exc:
            raise StoreUnavailable(
                f"Redis ledger {self._safe_url} unavailable: {self._message(exc)}"
            ) from exc
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"Redis ledger {self._safe_url}: {self._message(exc)}") from exc

    async def _run(self, awaitable: Awaitable[T]) -> T:
        if self._closed and inspect.iscoroutine(awaitable):
            awaitable.close()  # never sent; closing it keeps Python from warning
        with self._errors():
            return await awaitable

    async def _ready(self) -> None:
        """Fix the shard count on first use; refuse a ledger sharded differently."""
        if self._closing:
            raise StoreError(f"{self!r} is closed")
        if self._meta_checked:
            return
        with self._errors():
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.hsetnx(self._meta, "shards", str(self.shards))
                pipe.hget(self._meta, "shards")
                _, stored = await pipe.execute()
        if stored != str(self.shards):
            raise StoreError(
                f"Redis ledger under key prefix {self.key_prefix!r} was created with "
                f"shards={stored}, but this store was opened with shards={self.shards}; "
                "a ledger cannot be re-sharded"
            )
        self._meta_checked = True

    # -- appending --------------------------------------------------------------------------

    async def append(self, draft: RecordDraft) -> ConsentRecord:
        """Seal ``draft`` onto its consent id's chain and store it atomically."""
        await self._ready()
        return (await self._submit(chain_of(draft.consent_id, self.shards), [draft]))[0]

    async def append_many(self, drafts: Sequence[RecordDraft]) -> list[ConsentRecord]:
        """Append ``drafts`` (one script call per chain, chains concurrently), in order."""
        if not drafts:
            return []
        await self._ready()
        by_chain: dict[int, list[int]] = {}
        for index, draft in enumerate(drafts):
            by_chain.setdefault(chain_of(draft.consent_id, self.shards), []).append(index)
        chains = list(by_chain)
        results = await asyncio.gather(
            *(self._submit(chain, [drafts[i] for i in by_chain[chain]]) for chain in chains)
        )
        out: list[ConsentRecord | None] = [None] * len(drafts)
        for chain, records in zip(chains, results, strict=True):
            for index, record in zip(by_chain[chain], records, strict=True):
                out[index] = record
        return cast(list[ConsentRecord], out)

    async def _submit(self, chain: int, drafts: list[RecordDraft]) -> list[ConsentRecord]:
        """Queue ``drafts`` for the chain's writer, which combines concurrent appends."""
        if self._closing:
            raise StoreError(f"{self!r} is closed")
        future: asyncio.Future[list[ConsentRecord]] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(chain, []).append(_Pending(drafts, future))
        if chain not in self._writers:
            self._writers[chain] = asyncio.create_task(self._write(chain))
        return await future

    async def _write(self, chain: int) -> None:
        """Append the chain's queued drafts, a group per script call, until none are left."""
        queue = self._queues[chain]
        try:
            while queue:
                take, size = 0, 0
                while take < len(queue) and (
                    take == 0 or size + len(queue[take].drafts) <= GROUP_LIMIT
                ):
                    size += len(queue[take].drafts)
                    take += 1
                group = [p for p in queue[:take] if not p.future.done()]
                del queue[:take]
                if not group:
                    continue
                try:
                    records = await self._append_chain(
                        chain, [draft for pending in group for draft in pending.drafts]
                    )
                except asyncio.CancelledError:
                    for pending in group:
                        pending.future.cancel()
                    raise
                except Exception as exc:
                    for pending in group:
                        if not pending.future.done():
                            pending.future.set_exception(exc)
                    continue
                start = 0
                for pending in group:
                    end = start + len(pending.drafts)
                    if not pending.future.done():
                        pending.future.set_result(records[start:end])
                    start = end
        finally:
            for pending in queue:
                pending.future.cancel()
            queue.clear()
            del self._writers[chain]

    async def _append_chain(self, chain: int, drafts: list[RecordDraft]) -> list[ConsentRecord]:
        """Seal and store ``drafts`` on ``chain``, retrying on a moved head; in input order."""
        keys = self._keys[chain]
        unique: dict[str, RecordDraft] = {}
        for draft in drafts:
            unique.setdefault(draft.record_id, draft)
        known: dict[str, ConsentRecord] = {}
        head = self._heads.get(chain)
        if head is None:
            head = (await self._head(chain))[:2]
        for _ in range(MAX_TRIES):
            todo = [draft for rid, draft in unique.items() if rid not in known]
            if not todo:
                break
            seq, prev = head
            sealed: list[ConsentRecord] = []
            args: list[str | int] = [str(seq), prev, len(todo)]
            for draft in todo:
                seq += 1
                record, row = ConsentRecord.seal_stored(draft, seq=seq, prev_hash=prev, chain=chain)
                prev = record.hash
                sealed.append(record)
                args += [
                    record.record_id,
                    record.consent_id,
                    str(seq),
                    row.body,
                    record.hash,
                    row.personal or "",
                ]
            reply = cast(list[str], await self._run(self._append_script(keys.all, args)))
            if reply[0] == "ok":
                self._heads[chain] = (seq, prev)
                known.update((record.record_id, record) for record in sealed)
                break
            head = (int(reply[1]), reply[2])
            self._heads[chain] = head
            duplicates = dict(zip(reply[3::2], reply[4::2], strict=True))
            if duplicates:
                stored = await self._fetch(chain, list(duplicates.values()))
                for rid, sid in duplicates.items():
                    if sid not in stored:
                        raise StoreError(
                            f"Redis ledger chain {chain}: record {rid} is indexed at {sid} "
                            "but its stream entry is gone"
                        )
                    known[rid] = stored[sid].record()
        else:
            raise StoreError(
                f"Redis ledger chain {chain}: gave up appending after {MAX_TRIES} tries "
                "(the chain's head kept moving)"
            )
        return [known[draft.record_id] for draft in drafts]

    # -- reading ----------------------------------------------------------------------------

    def _select(
        self, entries: Sequence[RawEntry], low: str | None = None, high: str = "~"
    ) -> _Rows:
        """Pick the stream entries with ``low <= time < high`` (all if ``low`` is None); the
        hot loop of reading.

        Time and record id come straight from the canonical body (``time`` is its last key;
        ``,"`` cannot occur inside a JSON string), anything else goes the slow, exact way.
        """
        rows = _Rows([], [], [], [], [])
        seqs, times, bodies, digests, rids = rows
        for sid, fields in entries:
            if len(fields) == 4 and fields[0] == "body" and fields[2] == "hash":
                body, digest = fields[1], fields[3]
            else:
                body, digest = _body_and_hash(fields)
            tail = body[-38:]
            canonical = tail[:9] == ',"time":"' and tail[36:] == '"}'
            time = tail[9:36] if canonical else _time_of(body)
            if low is None or low <= time < high:
                seqs.append(int(sid.partition("-")[0]))
                times.append(time)
                bodies.append(body)
                digests.append(digest)
                start = body.rfind(',"record_id":"') + 14
                end = body.find('"', start)
                rid = body[start:end]
                if start == 13 or end < 0 or not rid or "\\" in rid:
                    rid = _record_id(body)
                # Record ids as bytes: redis-py packs those fastest.
                rids.append(rid.encode())
        return rows

    async def _complete(
        self, chain: int, rows: _Rows, personal: list[str | None]
    ) -> list[StoredRecord]:
        """Return ``rows`` as stored records; erasure times are looked up for erased ones."""
        seqs, times, bodies, digests, rids = rows
        redacted: list[str | None] | itertools.repeat[None] = itertools.repeat(None)
        if None in personal:
            erased = [index for index, text in enumerate(personal) if text is None]
            values = await self._run(
                self._client.hmget(self._keys[chain].redacted, [rids[i] for i in erased])
            )
            redacted = [None] * len(personal)
            for index, value in zip(erased, cast(list[str | None], values), strict=True):
                redacted[index] = value
        # Tuples built by zip and made records by tuple.__new__: no Python code per record.
        columns = zip(itertools.repeat(chain), seqs, times, bodies, digests, personal, redacted)
        return list(map(_new_tuple, itertools.repeat(StoredRecord), columns))

    async def _xrange(self, chain: int, start: str) -> list[RawEntry]:
        """Return up to ``BATCH`` raw entries of the chain's stream from ``start`` on."""
        return cast(
            list[RawEntry],
            await self._run(self._client.xrange(self._keys[chain].records, start, "+", BATCH)),
        )

    async def _chain_batches(
        self, chain: int, low: str | None = None, high: str = "~", last_id: str = "+"
    ) -> AsyncIterator[list[StoredRecord]]:
        """Yield the chain's records with ``low <= time < high`` (all if ``low`` is None) in
        stream order, in non-empty batches, up to stream id ``last_id``.

        One round trip per batch: the personal fields of one batch are fetched in the same
        pipeline as the stream entries of the next.
        """
        await self._ready()
        keys = self._keys[chain]
        entries = cast(
            list[RawEntry],
            await self._run(self._client.xrange(keys.records, "-", last_id, BATCH)),
        )
        while entries:
            rows = self._select(entries, low, high)
            rids = rows.rids
            more = len(entries) >= BATCH
            personal: list[str | None] = []
            following: list[RawEntry] = []
            if rids or more:
                with self._errors():
                    async with self._client.pipeline(transaction=False) as pipe:
                        if rids:
                            pipe.hmget(keys.personal, rids)
                        if more:
                            pipe.xrange(keys.records, _next_id(entries[-1][0]), last_id, BATCH)
                        replies = await pipe.execute()
                if rids:
                    personal = replies[0]
                if more:
                    following = replies[-1]
            if rids:
                yield await self._complete(chain, rows, personal)
            entries = following

    async def _fetch(self, chain: int, sids: Sequence[str]) -> dict[str, StoredRecord]:
        """Return the records at the stream ids ``sids`` (missing ones left out)."""
        if not sids:
            return {}
        keys = self._keys[chain]
        with self._errors():
            async with self._client.pipeline(transaction=False) as pipe:
                for sid in sids:
                    pipe.xrange(keys.records, sid, sid)
                replies = await pipe.execute()
        entries = [cast(list[RawEntry], reply)[0] for reply in replies if reply]
        if not entries:
            return {}
        rows = self._select(entries)
        personal = cast(
            list[str | None], await self._run(self._client.hmget(keys.personal, rows.rids))
        )
        records = await self._complete(chain, rows, personal)
        return {entry[0]: record for entry, record in zip(entries, records, strict=True)}

    def stored(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[StoredRecord]:
        """Yield stored records with ``since <= time < until``, chains merged by time."""
        low = format_time(since) if since else ""
        high = format_time(until) if until else "~"
        sources = [self._chain_batches(chain, low, high) for chain in range(self.shards)]
        return merge_batches(sources, _MERGE_KEY, sort_key=_TIME)

    async def records(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[ConsentRecord]:
        """Yield decoded records with ``since <= time < until``, chains merged by time."""
        async for stored in self.stored(since=since, until=until):
            yield stored.record()

    async def _sids_for(self, consent_id: str) -> tuple[int, list[str]]:
        chain = chain_of(consent_id, self.shards)
        members = cast(
            list[str],
            await self._run(
                self._client.zrangebylex(
                    self._keys[chain].consents, f"[{consent_id}:", f"({consent_id};"
                )
            ),
        )
        sids = []
        for member in members:
            owner, _, sid = member.rpartition(":")
            if owner == consent_id:
                sids.append(sid)
        sids.sort(key=_id_order)
        return chain, sids

    async def records_for(self, consent_id: str) -> list[ConsentRecord]:
        """Return every record of ``consent_id``, oldest first."""
        await self._ready()
        chain, sids = await self._sids_for(consent_id)
        stored = await self._fetch(chain, sids)
        return [stored[sid].record() for sid in sids if sid in stored]

    async def count(self) -> int:
        """Return the number of records on all chains."""
        await self._ready()
        with self._errors():
            async with self._client.pipeline(transaction=False) as pipe:
                for keys in self._keys:
                    pipe.xlen(keys.records)
                lengths = await pipe.execute()
        return sum(int(n) for n in lengths)

    # -- banners ----------------------------------------------------------------------------

    async def put_banner(self, fingerprint: str, content: str) -> None:
        """Keep the banner content for ``fingerprint``; the first version stored wins."""
        await self._ready()
        await self._run(self._client.hsetnx(self._banners, fingerprint, content))

    async def banner(self, fingerprint: str) -> str | None:
        """Return the stored banner content for ``fingerprint``."""
        await self._ready()
        return cast(str | None, await self._run(self._client.hget(self._banners, fingerprint)))

    # -- tracker audit ----------------------------------------------------------------------

    async def add_audit(self, counts: Mapping[AuditKey, int], *, at: datetime) -> None:
        """Add tracker-audit counts in one script call (bounded by ``AUDIT_MAX_ENTRIES``)."""
        if not counts:
            return
        await self._ready()
        args: list[str | int] = [AUDIT_MAX_ENTRIES, format_time(at)]
        for key, count in counts.items():
            args += [json.dumps(key, ensure_ascii=False, separators=(",", ":")), count]
        await self._run(self._audit_script(self._audit_keys, args))

    async def audit(self) -> list[AuditEntry]:
        """Return the tracker-audit findings, most frequent first."""
        await self._ready()
        with self._errors():
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.hgetall(self._audit_keys[0])
                pipe.hgetall(self._audit_keys[1])
                counts, seen = await pipe.execute()
        entries = []
        for finding, count in counts.items():
            kind, name, path = json.loads(finding)
            first, _, last = seen.get(finding, "|").partition("|")
            entries.append(AuditEntry(kind, name, path, int(count), first, last))
        entries.sort(key=lambda e: (-e.count, e.kind, e.name, e.path))
        return entries

    async def clear_audit(self) -> int:
        """Forget every tracker-audit finding."""
        await self._ready()
        size = await self._run(self._client.hlen(self._audit_keys[0]))
        # One slot (shared hash tag), so one DEL works on a cluster as well.
        await self._run(self._client.delete(*self._audit_keys))
        return int(size)

    # -- verification, retention, erasure ---------------------------------------------------

    async def verify(self, progress: ProgressCallback | None = None) -> VerifyReport:
        """Walk every chain in stream order (chains concurrently) and check each link."""
        await self._ready()
        checked = [0, PROGRESS_EVERY]

        def advance(n: int) -> None:
            checked[0] += n
            if progress is not None and checked[0] >= checked[1]:
                checked[1] = (checked[0] // PROGRESS_EVERY + 1) * PROGRESS_EVERY
                progress(checked[0])

        reports = await asyncio.gather(
            *(self._verify_chain(chain, advance) for chain in range(self.shards))
        )
        return VerifyReport.combine(reports)

    async def _head(self, chain: int) -> tuple[int, str, int, str]:
        """Return the chain's head: (seq, hash) of its last record, then of its anchor."""
        values = await self._run(
            self._client.hmget(self._keys[chain].head, ["seq", "hash", "anchor_seq", "anchor_hash"])
        )
        seq, digest, anchor_seq, anchor_hash = cast(list[str | None], values)
        anchor = int(anchor_seq or 0), anchor_hash or GENESIS_HASH
        return int(seq or anchor[0]), digest or anchor[1], *anchor

    async def _verify_chain(self, chain: int, advance: Callable[[int], None]) -> VerifyReport:
        """Check one chain; again if a purge moved its anchor meanwhile (not tampering)."""
        for _ in range(3):
            anchor = (await self._head(chain))[2:]
            report = await self._verify_chain_once(chain, advance)
            if report.ok or (await self._head(chain))[2:] == anchor:
                return report
        return report

    async def _verify_chain_once(self, chain: int, advance: Callable[[int], None]) -> VerifyReport:
        """Check the chain up to the head it had when the check began (appends may go on)."""
        head_seq, head_hash, anchor_seq, anchor_hash = await self._head(chain)
        verifier = ChainVerifier(anchor=anchor_hash, first_seq=anchor_seq + 1, chain=chain)
        last: StoredRecord | None = None
        async for batch in self._chain_batches(chain, last_id=f"{head_seq}-0"):
            for stored in batch:
                verifier.feed_stored(stored)
            last = batch[-1]
            advance(len(batch))
        report = verifier.report()
        problem = None
        if (last.seq if last else anchor_seq) < head_seq:
            ends = f", the chain ends at seq {last.seq}" if last else ""
            problem = f"chain {chain}: last record missing: head says seq {head_seq}{ends}"
        elif last is not None and last.hash != head_hash:
            problem = (
                f"chain {chain} seq {last.seq} ({_record_id(last.body)}): does not match the "
                "chain's head (the last record was altered)"
            )
        else:
            # Entries after the head are appends made meanwhile, unless the head says not.
            top = cast(
                list[RawEntry],
                await self._run(self._client.xrevrange(self._keys[chain].records, "+", "-", 1)),
            )
            if top and _id_order(top[0][0]) > (head_seq, 0):
                now_seq = (await self._head(chain))[0]
                if _id_order(top[0][0]) > (now_seq, 0):
                    problem = (
                        f"chain {chain}: entry {top[0][0]} lies beyond the head (seq "
                        f"{now_seq}): added outside the ledger"
                    )
        if problem is not None:
            report = replace(report, ok=False, problems=(*report.problems, problem))
        return report

    async def purge(self, before: datetime, *, dry_run: bool = False) -> PurgeReport:
        """Remove each chain's leading records older than ``before``, keeping an anchor."""
        await self._ready()
        cutoff = format_time(before)
        results = await asyncio.gather(
            *(self._purge_chain(chain, cutoff, dry_run) for chain in range(self.shards))
        )
        anchors = tuple(anchor for _, anchor in results if anchor is not None)
        return PurgeReport(sum(n for n, _ in results), before, anchors, dry_run)

    async def _purge_chain(
        self, chain: int, cutoff: str, dry_run: bool
    ) -> tuple[int, tuple[int, int, str] | None]:
        keys = self._keys[chain]
        purged = 0
        anchor: tuple[int, int, str] | None = None
        start = "-"
        while True:
            entries = await self._xrange(chain, start)
            batch: list[str] = []
            last: tuple[int, str] | None = None
            newer = False
            for sid, fields in entries:
                body, digest = _body_and_hash(fields)
                try:
                    values = json.loads(body)
                    time, seq = values["time"], int(values["seq"])
                    member = f"{values['consent_id']}:{sid}"
                    rid = str(values["record_id"])
                except (ValueError, KeyError, TypeError):
                    newer = True  # an undecodable record is never purged, nor what follows
                    break
                if not isinstance(time, str) or time >= cutoff:
                    newer = True
                    break
                batch += [sid, rid, member]
                last = (seq, digest)
            if last is not None:
                removed = len(batch) // 3
                if not dry_run:
                    args: list[str | int] = [str(last[0]), last[1], removed, *batch]
                    removed = int(await self._run(self._purge_script(keys.all, args)))
                    if not removed:  # another purge was first; it set the anchor
                        return purged, anchor
                purged += removed
                anchor = (chain, last[0], last[1])
            if newer or len(entries) < BATCH:
                return purged, anchor
            start = _next_id(entries[-1][0])

    async def erase(self, consent_id: str, *, at: datetime) -> int:
        """Blank the personal fields of ``consent_id``'s records; the digests stay."""
        await self._ready()
        keys = self._keys[chain_of(consent_id, self.shards)]
        erased = await self._run(self._erase_script(keys.all, [consent_id, format_time(at)]))
        return int(erased)

    async def ping(self) -> None:
        """Check the server (or cluster) answers."""
        try:
            await self._run(self._client.ping())
        except StoreError as exc:
            if isinstance(exc, StoreUnavailable):
                raise
            raise StoreUnavailable(str(exc)) from exc

    async def close(self) -> None:
        """Let queued appends finish, then close the connections."""
        if self._closing:
            return
        self._closing = True
        while self._writers:
            await asyncio.gather(*self._writers.values(), return_exceptions=True)
        self._closed = True
        await self._client.aclose()


# -- helpers ----------------------------------------------------------------------------------


def _check_options(shards: int, key_prefix: str, timeout: float) -> None:
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"shards must be a whole number from 1 to {MAX_SHARDS}, e.g. ?shards=16")
    if not _PREFIX_FORM.fullmatch(key_prefix):
        raise ValueError(
            "key_prefix must be letters, digits, '_' or '-' ([A-Za-z0-9_-]+), "
            "e.g. ?key_prefix=consentgate"
        )
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError("timeout must be a positive number of seconds, e.g. ?timeout=2.0")


def _parse_node(item: str) -> tuple[str, int]:
    """Parse ``host[:port]`` (``[v6]:port`` for IPv6) of a store URL."""
    if item.startswith("["):
        host, bracket, tail = item[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise ValueError(f"host {item!r} is not of the form [::1]:6379")
        port_text = tail[1:]
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise ValueError(f"host {item!r} is empty; use host:6379")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not port_text.isascii() or not 0 < int(port_text) < 65536:
        raise ValueError(f"port {port_text!r} of host {host!r} is not a port number (1..65535)")
    return host, int(port_text)


def _parse_query(query: str) -> dict[str, Any]:
    """Parse the ``shards``, ``key_prefix`` and ``timeout`` options of a store URL."""
    options: dict[str, Any] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ValueError(
            "store URL query is malformed; use ?shards=16&key_prefix=consentgate&timeout=2.0"
        ) from None
    for name, value in pairs:
        if name in options:
            raise ValueError(f"store URL option {name!r} is given twice")
        if name == "shards":
            if not value.isdigit() or not value.isascii() or not 1 <= int(value) <= MAX_SHARDS:
                raise ValueError(
                    f"shards={value!r} is not allowed: shards must be a whole number from 1 "
                    f"to {MAX_SHARDS}, e.g. ?shards=16"
                )
            options["shards"] = int(value)
        elif name == "key_prefix":
            if not _PREFIX_FORM.fullmatch(value):
                raise ValueError(
                    f"key_prefix={value!r} is not allowed: use letters, digits, '_' or '-' "
                    "([A-Za-z0-9_-]+), e.g. ?key_prefix=consentgate"
                )
            options["key_prefix"] = value
        elif name == "timeout":
            try:
                timeout = float(value)
            except ValueError:
                timeout = math.nan
            if not math.isfinite(timeout) or timeout <= 0:
                raise ValueError(
                    f"timeout={value!r} is not allowed: timeout must be a positive number of "
                    "seconds, e.g. ?timeout=2.0"
                )
            options["timeout"] = timeout
        else:
            raise ValueError(
                f"store URL option {name!r} is unknown; Redis store URLs take shards, "
                "key_prefix and timeout"
            )
    return options


_RECORD_ID = ',"record_id":"'


def _record_id(body: str) -> str:
    """Return the record id of a record body (fast path for the canonical form)."""
    start = body.find(_RECORD_ID)
    if start >= 0:
        start += len(_RECORD_ID)
        end = body.find('"', start)
        # Inside a JSON string every '"' is escaped, so without a backslash this is its end.
        if end >= 0 and "\\" not in body[start:end]:
            return body[start:end]
    try:
        value = json.loads(body)["record_id"]
    except (ValueError, KeyError, TypeError):
        return ""
    return value if isinstance(value, str) else ""


#: ``tuple.__new__``, typed for making stored records from ready tuples.
_new_tuple: Callable[[type[StoredRecord], tuple[Any, ...]], StoredRecord] = tuple.__new__


def _raw_reply(response: Any, **options: Any) -> Any:
    return response


def _body_and_hash(fields: Sequence[str]) -> tuple[str, str]:
    """Return the ``body`` and ``hash`` fields of a raw stream entry ('' where missing)."""
    values = dict(zip(fields[::2], fields[1::2], strict=False))
    return values.get("body", ""), values.get("hash", "")


def _time_of(body: str) -> str:
    """Return the time text of a record body that is not in the canonical form ('' if none)."""
    try:
        value = json.loads(body)["time"]
    except (ValueError, KeyError, TypeError):
        return ""
    return value if isinstance(value, str) else ""


def _next_id(sid: str) -> str:
    """Return the smallest stream id after ``sid``."""
    ms, _, seq = sid.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _id_order(sid: str) -> tuple[int, int]:
    ms, _, seq = sid.partition("-")
    return int(ms), int(seq or 0)


#: The merge order of ``stored``: time, then chain and seq (unique, so a total order).
_MERGE_KEY = operator.attrgetter("time", "chain", "seq")
#: Sorting a round by time alone, stably, keeps chain and seq order among equal times.
_TIME = operator.attrgetter("time")


async def merge_batches(
    sources: Sequence[AsyncIterator[list[T]]],
    key: Callable[[T], Any],
    *,
    sort_key: Callable[[T], Any] | None = None,
) -> AsyncIterator[T]:
    """Merge sources that each yield batches in ``key`` order into one stream in that order.

    Each round takes, from every source's current batch, the items up to the smallest of
    the batches' last keys (so at least one batch is used up) and sorts them together —
    Python's sort merges such sorted runs in linear time. A source out of order still has
    every item yielded once (the output is then only as sorted as its sources). Each
    source's next batch is fetched while the current ones are merged; at most two batches
    per source are held.

    ``sort_key``, if given, is a cheaper key that sorts like ``key`` except for ties, which
    must then be in source order (the sort is stable; sources are taken in order).
    """
    order = key if sort_key is None else sort_key
    pending: dict[int, asyncio.Task[list[T] | None]] = {}

    async def pull(source: AsyncIterator[list[T]]) -> list[T] | None:
        try:
            return await anext(source)
        except StopAsyncIteration:
            return None

    def request(index: int) -> None:
        pending[index] = asyncio.ensure_future(pull(sources[index]))

    batches: dict[int, list[T]] = {}
    positions: dict[int, int] = {}

    async def refill(index: int) -> None:
        """Load the source's next non-empty batch, or drop the source once it is done."""
        while True:
            batch = await pending.pop(index)
            if batch is None:
                batches.pop(index, None)
                return
            request(index)
            if batch:
                batches[index], positions[index] = batch, 0
                return

    try:
        for index in range(len(sources)):
            request(index)
        for index in range(len(sources)):
            await refill(index)
        while batches:
            if len(batches) == 1:
                ((index, batch),) = batches.items()
                for item in batch[positions[index] :]:
                    yield item
                await refill(index)
                continue
            lasts = {index: key(batch[-1]) for index, batch in batches.items()}
            bound = min(lasts.values())
            merged: list[T] = []
            used_up = []
            for index, batch in batches.items():
                start = positions[index]
                # The source that sets the bound is used up whole, so every round makes
                # progress even if a source is not in order after all.
                end = (
                    len(batch)
                    if lasts[index] == bound
                    else bisect.bisect_right(batch, bound, lo=start, key=key)
                )
                merged += batch[start:end]
                positions[index] = end
                if end == len(batch):
                    used_up.append(index)
            merged.sort(key=order)
            for item in merged:
                yield item
            for index in used_up:
                await refill(index)
    finally:
        tasks = list(pending.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for source in sources:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
