"""The store contract, run against every backend: SQLite, one Redis server, a Redis Cluster.

Each test gets an opened store on an empty ledger. Tampering goes around the store (SQL on
the file, raw Redis commands on the documented key layout) and ``verify`` must notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import redis.asyncio
import redis.asyncio.cluster

from consentgate.consent import ConsentRecord, StoredRecord, open_store
from consentgate.consent.redis import RedisStore, chain_of, merge_batches
from consentgate.consent.store import Store, StoreError, StoreUnavailable
from tests.consent.drafts import T0, draft
from tests.redis_servers import RedisCluster, RedisServer, cluster_nodes, flush, free_port

BACKENDS = ["sqlite", "redis", "cluster"]
SHARDS = 16
PREFIX = "consentgate"


def cid(n: int) -> str:
    return f"visitor-{n:06d}"


def by_chain(records: list[ConsentRecord]) -> dict[int, list[ConsentRecord]]:
    chains: dict[int, list[ConsentRecord]] = {}
    for record in sorted(records, key=lambda r: (r.chain, r.seq)):
        chains.setdefault(record.chain, []).append(record)
    return chains


def assert_sealed_chains(records: list[ConsentRecord]) -> None:
    """Every chain runs seq 1..n, each record linked to its predecessor and hashed right."""
    for chain, chain_records in by_chain(records).items():
        assert [r.seq for r in chain_records] == list(range(1, len(chain_records) + 1)), chain
        prev = "0" * 64
        for record in chain_records:
            assert record.chain == chain
            assert record.prev_hash == prev
            assert record.hash == record.computed_hash()
            prev = record.hash


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return cast(str, request.param)


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a ledger on ``backend`` (``store`` flushes the session's Redis servers)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    if backend == "redis":
        server = cast(RedisServer, request.getfixturevalue("redis_server"))
        return server.url
    cluster = cast(RedisCluster, request.getfixturevalue("redis_cluster"))
    return cluster.url


@pytest.fixture
async def store(store_url: str, backend: str) -> AsyncIterator[Store]:
    if backend != "sqlite":
        await flush(store_url)
    ledger = open_store(store_url)
    try:
        yield ledger
    finally:
        await ledger.close()


@pytest.fixture
async def second(store: Store, store_url: str) -> AsyncIterator[Store]:
    """Another client of the same ledger (another process, say)."""
    ledger = open_store(store_url)
    try:
        yield ledger
    finally:
        await ledger.close()


class Raw:
    """Changes a ledger behind the store's back."""

    async def set_body(self, chain: int, seq: int, body: str) -> None:
        raise NotImplementedError

    async def set_personal(self, chain: int, seq: int, record_id: str, text: str) -> None:
        raise NotImplementedError

    async def delete(self, chain: int, seq: int) -> None:
        raise NotImplementedError

    async def swap(self, chain: int, a: int, b: int) -> None:
        """Exchange the records stored at ``a`` and ``b`` (bodies, hashes, personal fields)."""
        raise NotImplementedError

    async def close(self) -> None:
        pass


class SQLiteRaw(Raw):
    def __init__(self, path: Path) -> None:
        self.path = path

    def _execute(self, sql: str, *params: object) -> list[Any]:
        db = sqlite3.connect(self.path)
        try:
            with db:
                return db.execute(sql, params).fetchall()
        finally:
            db.close()

    async def set_body(self, chain: int, seq: int, body: str) -> None:
        self._execute("UPDATE records SET body = ? WHERE seq = ?", body, seq)

    async def set_personal(self, chain: int, seq: int, record_id: str, text: str) -> None:
        self._execute("UPDATE records SET personal = ? WHERE seq = ?", text, seq)

    async def delete(self, chain: int, seq: int) -> None:
        self._execute("DELETE FROM records WHERE seq = ?", seq)

    async def swap(self, chain: int, a: int, b: int) -> None:
        columns = "record_id, consent_id, time, body, hash, personal"
        rows = {
            row[0]: row[1:]
            for row in self._execute(
                f"SELECT seq, {columns} FROM records WHERE seq IN (?, ?)",  # noqa: S608
                a,
                b,
            )
        }
        self._execute("UPDATE records SET record_id = 'tmp-' || seq WHERE seq IN (?, ?)", a, b)
        for target, source in ((a, b), (b, a)):
            self._execute(
                "UPDATE records SET record_id = ?, consent_id = ?, time = ?, body = ?, "
                "hash = ?, personal = ? WHERE seq = ?",
                *rows[source],
                target,
            )


def chain_key(chain: int, name: str) -> str:
    """The documented key of a chain's structure (stream ``records``, hash ``personal``...)."""
    return f"{PREFIX}:{{{PREFIX}-{chain:02d}}}:{name}"


class RedisRaw(Raw):
    def __init__(self, url: str) -> None:
        self.client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
        if url.startswith("redis+cluster://"):
            nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in cluster_nodes(url)]
            self.client = redis.asyncio.cluster.RedisCluster(
                startup_nodes=nodes, decode_responses=True
            )
        else:
            self.client = redis.asyncio.Redis.from_url(url, decode_responses=True)

    async def entries(self, chain: int) -> list[tuple[str, dict[str, str]]]:
        return cast(
            list[tuple[str, dict[str, str]]], await self.client.xrange(chain_key(chain, "records"))
        )

    async def rewrite(self, chain: int, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Replace the chain's stream by ``entries`` (ids kept as given)."""
        key = chain_key(chain, "records")
        await self.client.delete(key)
        for sid, fields in entries:
            await self.client.xadd(key, cast(Any, fields), id=sid)

    async def set_body(self, chain: int, seq: int, body: str) -> None:
        entries = await self.entries(chain)
        changed = [
            (sid, {**fields, "body": body} if sid == f"{seq}-0" else fields)
            for sid, fields in entries
        ]
        await self.rewrite(chain, changed)

    async def set_personal(self, chain: int, seq: int, record_id: str, text: str) -> None:
        await self.client.hset(chain_key(chain, "personal"), record_id, text)

    async def delete(self, chain: int, seq: int) -> None:
        assert await self.client.xdel(chain_key(chain, "records"), f"{seq}-0") == 1

    async def swap(self, chain: int, a: int, b: int) -> None:
        entries = dict(await self.entries(chain))
        entries[f"{a}-0"], entries[f"{b}-0"] = entries[f"{b}-0"], entries[f"{a}-0"]
        await self.rewrite(chain, list(entries.items()))

    async def close(self) -> None:
        await self.client.aclose()


@pytest.fixture
async def raw(store: Store, store_url: str, backend: str, tmp_path: Path) -> AsyncIterator[Raw]:
    tamperer: Raw = (
        SQLiteRaw(tmp_path / "ledger.db") if backend == "sqlite" else RedisRaw(store_url)
    )
    try:
        yield tamperer
    finally:
        await tamperer.close()


# -- the contract -----------------------------------------------------------------------------


def test_store_satisfies_the_protocol(store: Store, backend: str) -> None:
    assert isinstance(store, Store)
    assert type(store).__name__ == ("SQLiteStore" if backend == "sqlite" else "RedisStore")


async def test_appends_seal_one_chain_per_shard(store: Store, backend: str) -> None:
    records = [await store.append(draft(n, cid(n % 40))) for n in range(120)]
    assert_sealed_chains(records)
    chains = {r.chain for r in records}
    if backend == "sqlite":
        assert chains == {0}
    else:
        assert len(chains) > 4, "40 consent ids spread over several of the 16 chains"
        assert all(r.chain == chain_of(r.consent_id, SHARDS) for r in records)
    # One consent id stays on one chain, in order.
    mine = [r for r in records if r.consent_id == cid(7)]
    assert len({r.chain for r in mine}) == 1
    assert [r.seq for r in mine] == sorted(r.seq for r in mine)
    assert await store.count() == 120
    report = await store.verify()
    assert report.ok, str(report)
    assert report.checked == 120


async def test_record_round_trips_every_field(store: Store) -> None:
    record = await store.append(
        draft(consent_id="Zoë-✓", action="withdraw", granted=("youtube", "matomo"))
    )
    (stored,) = await store.records_for("Zoë-✓")
    assert stored == record
    assert stored.granted == ("matomo", "youtube")
    assert stored.ip == "203.0.113.0" and stored.redacted_at is None


async def test_retried_append_is_stored_once(store: Store) -> None:
    first = draft(1, cid(1))
    a = await store.append(first)
    b = await store.append(first)
    assert a == b
    assert await store.count() == 1
    # Across calls and inside one batch: the stored record comes back, nothing is added.
    other = draft(2, cid(2))
    batch = await store.append_many([other, first, other, draft(3, cid(1))])
    assert batch[0] == batch[2]
    assert batch[1] == a
    assert_sealed_chains([a, batch[0], batch[3]])
    assert await store.count() == 3
    assert (await store.verify()).ok


async def test_concurrent_retries_of_one_draft_from_two_clients(
    store: Store, second: Store
) -> None:
    await store.append(draft(0, cid(1)))  # both clients have something cached
    await second.append(draft(1, cid(1)))
    retried = draft(2, cid(1))
    a, b = await asyncio.gather(store.append(retried), second.append(retried))
    assert a == b
    assert await store.count() == 3
    assert [r.seq for r in await store.records_for(cid(1))] == [1, 2, 3]


async def test_append_many_keeps_order_and_returns_input_order(store: Store) -> None:
    drafts = [draft(n, cid(n % 7)) for n in range(50)]
    records = await store.append_many(drafts)
    assert [r.record_id for r in records] == [d.record_id for d in drafts]
    assert_sealed_chains(records)
    for consent_id in {d.consent_id for d in drafts}:
        stored = await store.records_for(consent_id)
        assert [r.record_id for r in stored] == [
            d.record_id for d in drafts if d.consent_id == consent_id
        ]
    assert await store.append_many([]) == []
    # A later batch continues each chain where it ended.
    more = await store.append_many([draft(60, cid(1)), draft(61, cid(2))])
    assert_sealed_chains(records + more)
    assert (await store.verify()).checked == 52


async def test_stored_merges_chains_by_time_and_honours_the_window(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches, so iteration crosses batch boundaries on every chain.
    monkeypatch.setattr("consentgate.consent.sqlite.BATCH", 3)
    monkeypatch.setattr("consentgate.consent.redis.BATCH", 3)
    await store.append_many([draft(n, cid(n % 11)) for n in range(60)])
    times = [r.time async for r in store.records()]
    assert times == [T0 + timedelta(minutes=n) for n in range(60)]
    window = [
        r.time - T0
        async for r in store.records(
            since=T0 + timedelta(minutes=13), until=T0 + timedelta(minutes=17)
        )
    ]
    assert window == [timedelta(minutes=n) for n in range(13, 17)]
    stored = [s async for s in store.stored(since=T0 + timedelta(minutes=58))]
    assert [s.time for s in stored] == [
        "2026-11-21T10:58:00.000000Z",
        "2026-11-21T10:59:00.000000Z",
    ]
    assert all(s.personal is not None and s.redacted_at is None for s in stored)
    assert stored[0].record().time == T0 + timedelta(minutes=58)
    assert [s async for s in store.stored(until=T0)] == []


async def test_stored_can_be_left_early(store: Store) -> None:
    await store.append_many([draft(n, cid(n)) for n in range(30)])
    async with contextlib.aclosing(
        cast(AsyncGenerator[StoredRecord, None], store.stored())
    ) as records:
        async for record in records:
            assert record.seq >= 1
            break
    assert await store.count() == 30


async def test_records_for(store: Store) -> None:
    await store.append_many([draft(n, cid(n % 3)) for n in range(9)])
    mine = await store.records_for(cid(1))
    assert [r.time for r in mine] == [T0 + timedelta(minutes=n) for n in (1, 4, 7)]
    assert all(r.consent_id == cid(1) for r in mine)
    assert await store.records_for("unknown") == []


async def test_banners_first_write_wins(store: Store) -> None:
    await store.put_banner("a" * 64, '{"title":"Datenschutz"}')
    await store.put_banner("a" * 64, '{"title":"changed"}')
    assert await store.banner("a" * 64) == '{"title":"Datenschutz"}'
    assert await store.banner("b" * 64) is None


async def test_audit_counts_add_up_with_first_and_last_seen(store: Store) -> None:
    host = ("host", "cdn.example.net", "/kontakt")
    cookie = ("cookie", "_ga", "/")
    await store.add_audit({host: 2, cookie: 1}, at=T0)
    await store.add_audit({host: 3}, at=T0 + timedelta(hours=1))
    await store.add_audit({}, at=T0 + timedelta(hours=2))
    entries = await store.audit()
    assert [(e.kind, e.name, e.path, e.count) for e in entries] == [(*host, 5), (*cookie, 1)]
    assert (
        entries[0].first_seen.startswith("2026-") and entries[0].first_seen < entries[0].last_seen
    )
    assert entries[1].first_seen == entries[1].last_seen


async def test_audit_keeps_a_bounded_number_of_findings(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("consentgate.consent.sqlite", "consentgate.consent.redis"):
        monkeypatch.setattr(f"{module}.AUDIT_MAX_ENTRIES", 3)
    await store.add_audit({("host", f"h{n}.example", "/"): 1 for n in range(5)}, at=T0)
    await store.add_audit({("host", "h0.example", "/"): 4, ("host", "new.example", "/"): 1}, at=T0)
    entries = await store.audit()
    assert [(e.name, e.count) for e in entries] == [
        ("h0.example", 5),
        ("h1.example", 1),
        ("h2.example", 1),
    ]


async def test_clearing_the_audit_forgets_every_finding(store: Store) -> None:
    await store.add_audit({("host", "a.example", "/"): 1, ("cookie", "x", "/ü"): 1}, at=T0)
    assert await store.clear_audit() == 2
    assert await store.audit() == []
    await store.add_audit({("cookie", "x", "/ü"): 1}, at=T0)
    assert [(e.name, e.path) for e in await store.audit()] == [("x", "/ü")]


async def test_verify_reports_progress_and_counts(store: Store) -> None:
    await store.append_many([draft(n, cid(n)) for n in range(25)])
    seen: list[int] = []
    report = await store.verify(seen.append)
    assert report.ok and report.checked == 25
    assert seen == sorted(seen)
    assert str(report).startswith("chain intact: 25 records")


async def test_verify_while_appending_stays_ok(store: Store, second: Store) -> None:
    await store.append_many([draft(n, cid(n % 20)) for n in range(100)])

    async def keep_appending() -> None:
        for n in range(150):
            await second.append(draft(100 + n, cid(n % 20)))

    appending = asyncio.ensure_future(keep_appending())
    reports = []
    while not appending.done():
        reports.append(await store.verify())
    await appending
    assert len(reports) >= 2
    assert all(r.ok for r in reports), [str(r) for r in reports if not r.ok]
    assert all(100 <= r.checked <= 250 for r in reports)
    final = await store.verify()
    assert final.ok and final.checked == 250


async def test_concurrent_appends_from_two_clients_do_not_fork(
    store: Store, second: Store, backend: str
) -> None:
    drafts = [draft(n, cid(n % 30)) for n in range(200)]
    clients = [store, second]
    records = await asyncio.gather(*(clients[n % 2].append(d) for n, d in enumerate(drafts)))
    assert len({r.record_id for r in records}) == 200
    assert_sealed_chains(list(records))
    report = await second.verify()
    assert report.ok, str(report)
    assert report.checked == 200
    assert await store.count() == 200
    stored = [r async for r in store.records()]
    assert_sealed_chains(stored)
    if backend != "sqlite":
        assert len(by_chain(stored)) > 4


# -- tampering --------------------------------------------------------------------------------

TAMPERING = ["edit-body", "edit-personal", "delete-middle", "delete-last", "reorder"]


@pytest.mark.parametrize("kind", TAMPERING)
async def test_verify_detects_tampering(
    store: Store, raw: Raw, backend: str, kind: str, request: pytest.FixtureRequest
) -> None:
    # Five records of one consent id (one chain), between records of others.
    await store.append_many([draft(n, cid(100 + n)) for n in range(5)])
    records = [await store.append(draft(10 + n, cid(1))) for n in range(5)]
    chain = records[0].chain
    first = records[0].seq
    target = records[2]  # the middle one
    assert [r.seq for r in records] == list(range(first, first + 5))
    assert (await store.verify()).ok

    if kind == "edit-body":
        body = json.loads(target.body())
        body["granted"] = ["facebook_pixel", "google_ads", "matomo"]
        await raw.set_body(
            chain, target.seq, json.dumps(body, sort_keys=True, separators=(",", ":"))
        )
        expected = f"chain {chain} seq {target.seq} ({target.record_id}): content altered"
    elif kind == "edit-personal":
        personal = json.loads(cast(bytes, target.personal()))
        personal["ip"] = "198.51.100.0"
        await raw.set_personal(
            chain,
            target.seq,
            target.record_id,
            json.dumps(personal, sort_keys=True, separators=(",", ":")),
        )
        expected = f"chain {chain} seq {target.seq} ({target.record_id}): personal fields altered"
    elif kind == "delete-middle":
        await raw.delete(chain, target.seq)
        after = records[3]
        expected = (
            f"chain {chain} seq {after.seq} ({after.record_id}): expected seq {target.seq} "
            "(record missing"
        )
    elif kind == "delete-last":
        await raw.delete(chain, records[4].seq)
        expected = f"chain {chain}: last record missing: head says seq {records[4].seq}"
    else:
        a, b = records[1], records[3]
        await raw.swap(chain, a.seq, b.seq)
        expected = f"chain {chain} seq {b.seq} ({b.record_id}): expected seq {a.seq}"

    report = await store.verify()
    assert not report.ok
    assert report.problems[0].startswith(expected), report.problems
    if kind == "reorder":
        assert any("does not link" in p for p in report.problems)
    # Only the tampered chain is reported.
    assert all(p.startswith((f"chain {chain} ", f"chain {chain}:")) for p in report.problems)


# -- retention and erasure --------------------------------------------------------------------


async def test_purge_removes_only_each_chains_old_prefix(store: Store) -> None:
    # Many consent ids, times rising with every append...
    records = await store.append_many([draft(n, cid(n % 13)) for n in range(40)])
    # ...and one chain where an old record sits behind a newer one: it must stay.
    late = await store.append_many([draft(m, cid(999)) for m in (100, 101, 200, 102, 103)])
    cutoff = T0 + timedelta(minutes=150)
    # Everything of the first batch is older than the cutoff; of cid(999)'s chain only the
    # prefix up to the first newer record goes (other consent ids may share that chain).
    late_chain = late[0].chain
    kept_late = {r.record_id for r in late[2:]}
    expected_gone = [r for r in records + late if r.record_id not in kept_late]

    dry = await store.purge(cutoff, dry_run=True)
    assert dry.dry_run and dry.purged == len(expected_gone)
    assert await store.count() == 45

    report = await store.purge(cutoff)
    assert report.purged == len(expected_gone)
    assert not report.dry_run and report.cutoff == cutoff
    remaining = [r async for r in store.records()]
    assert {r.record_id for r in remaining} == kept_late
    assert await store.count() == 3
    # The anchors are each touched chain's last removed record.
    anchors = {chain: (seq, digest) for chain, seq, digest in report.anchors}
    for chain, chain_records in by_chain(expected_gone).items():
        assert anchors[chain] == (chain_records[-1].seq, chain_records[-1].hash)
    assert anchors[late_chain] == (late[1].seq, late[1].hash)
    assert await store.records_for(cid(3)) == []

    verified = await store.verify()
    assert verified.ok, str(verified)
    assert verified.checked == 3
    # Purging again finds nothing new; appending continues the chains after the anchors.
    assert (await store.purge(cutoff)).purged == 0
    more = await store.append_many([draft(300 + n, cid(n % 13)) for n in range(20)])
    for record in more:
        if record.chain in anchors:
            assert record.seq > anchors[record.chain][0]
    verified = await store.verify()
    assert verified.ok, str(verified)
    assert verified.checked == 23


async def test_purge_of_everything_keeps_the_chain_verifiable(store: Store) -> None:
    await store.append_many([draft(n, cid(n)) for n in range(10)])
    report = await store.purge(T0 + timedelta(days=1))
    assert report.purged == 10
    assert await store.count() == 0
    assert (await store.verify()).ok
    record = await store.append(draft(2000, cid(3)))
    assert record.seq > 1
    assert (await store.verify()).ok


async def test_erase_blanks_personal_fields_and_keeps_the_chain(store: Store) -> None:
    before = await store.append_many([draft(n, cid(1) if n % 2 else cid(2)) for n in range(8)])
    at = T0 + timedelta(days=30)
    assert await store.erase(cid(1), at=at) == 4
    erased = await store.records_for(cid(1))
    originals = {r.record_id: r for r in before}
    assert len(erased) == 4
    for record in erased:
        original = originals[record.record_id]
        assert (record.ip, record.browser, record.os, record.page_url, record.salt) == (
            "", "", "", "", ""
        )  # fmt: skip
        assert record.personal_digest == original.personal_digest
        assert record.hash == original.hash
        assert record.redacted_at == at
    untouched = await store.records_for(cid(2))
    assert all(r.ip == "203.0.113.0" and r.redacted_at is None for r in untouched)
    stored = {s.hash: s async for s in store.stored()}
    assert all(stored[r.hash].personal is None for r in erased)
    report = await store.verify()
    assert report.ok, str(report)
    assert report.checked == 8
    assert await store.erase(cid(1), at=at) == 0
    assert await store.erase("unknown", at=at) == 0


# -- Redis only -------------------------------------------------------------------------------


@pytest.fixture
async def redis_url(redis_server: RedisServer) -> str:
    await flush(redis_server.url)
    return redis_server.url


async def test_redis_key_layout(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    raw = RedisRaw(redis_url)
    try:
        record = await store.append(draft(0, cid(5)))
        chain = chain_of(cid(5), SHARDS)
        assert record.chain == chain
        assert await raw.client.hget(f"{PREFIX}:meta", "shards") == "16"
        ((sid, fields),) = await raw.entries(chain)
        assert sid == "1-0"
        assert fields == {"body": record.body().decode(), "hash": record.hash}
        head = await raw.client.hgetall(chain_key(chain, "head"))
        assert head == {"seq": "1", "hash": record.hash}
        assert await raw.client.hget(chain_key(chain, "ids"), record.record_id) == sid
        assert await raw.client.zrange(chain_key(chain, "consents"), 0, -1) == [f"{cid(5)}:1-0"]
        assert (
            await raw.client.hget(chain_key(chain, "personal"), record.record_id)
            == cast(bytes, record.personal()).decode()
        )
        await store.put_banner("a" * 64, "{}")
        assert await raw.client.hget(f"{PREFIX}:banners", "a" * 64) == "{}"
    finally:
        await raw.close()
        await store.close()


async def test_redis_consent_ids_sharing_a_prefix_stay_apart(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url + "?shards=1")
    try:
        await store.append_many([draft(0, "a"), draft(1, "a:b"), draft(2, "a"), draft(3, "ab")])
        assert [r.consent_id for r in await store.records_for("a")] == ["a", "a"]
        assert [r.consent_id for r in await store.records_for("a:b")] == ["a:b"]
        assert await store.erase("a", at=T0) == 2
        assert (await store.records_for("a:b"))[0].ip == "203.0.113.0"
        assert (await store.verify()).ok
    finally:
        await store.close()


async def test_redis_verify_finds_records_beyond_the_head(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    raw = RedisRaw(redis_url)
    try:
        records = await store.append_many([draft(n, cid(1)) for n in range(3)])
        chain = records[0].chain
        forged = ConsentRecord.seal(
            draft(9, cid(1)), seq=4, prev_hash=records[-1].hash, chain=chain
        )
        await raw.client.xadd(
            chain_key(chain, "records"),
            {"body": forged.body().decode(), "hash": forged.hash},
            id="4-0",
        )
        report = await store.verify()
        assert not report.ok
        assert report.problems == (
            f"chain {chain}: entry 4-0 lies beyond the head (seq 3): added outside the ledger",
        )
    finally:
        await raw.close()
        await store.close()


async def test_redis_shard_count_is_fixed(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    try:
        await store.append(draft())
    finally:
        await store.close()
    other = RedisStore.from_url(redis_url + "?shards=8")
    try:
        with pytest.raises(StoreError, match=r"shards=16.*shards=8"):
            await other.count()
        with pytest.raises(StoreError, match=r"shards=16.*shards=8"):
            await other.append(draft())
    finally:
        await other.close()
    # Another key prefix is another ledger.
    separate = RedisStore.from_url(redis_url + "?shards=8&key_prefix=other-ledger")
    try:
        assert await separate.count() == 0
    finally:
        await separate.close()


async def test_redis_append_is_all_or_nothing(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    raw = RedisRaw(redis_url)
    try:
        chain = chain_of(cid(1), SHARDS)
        await raw.client.set(chain_key(chain, "consents"), "not a sorted set")
        drafts = [draft(n, cid(1)) for n in range(3)]
        with pytest.raises(StoreError, match="WRONGTYPE") as caught:
            await store.append_many(drafts)
        assert not isinstance(caught.value, StoreUnavailable)
        assert await raw.client.exists(chain_key(chain, "records"), chain_key(chain, "ids")) == 0
        assert await raw.client.exists(chain_key(chain, "head")) == 0
    finally:
        await raw.close()
        await store.close()


BAD_URLS = [
    ("redis://:s3cret@127.0.0.1:6379/0?shards=0", "shards"),
    ("redis://:s3cret@127.0.0.1:6379/0?shards=1025", "shards"),
    ("redis://:s3cret@127.0.0.1:6379/0?shards=many", "shards"),
    ("redis://:s3cret@127.0.0.1:6379/0?key_prefix=a:b", "key_prefix"),
    ("redis://:s3cret@127.0.0.1:6379/0?key_prefix=", "key_prefix"),
    ("redis://:s3cret@127.0.0.1:6379/0?timeout=0", "timeout"),
    ("redis://:s3cret@127.0.0.1:6379/0?timeout=soon", "timeout"),
    ("redis://:s3cret@127.0.0.1:6379/0?color=blue", "color"),
    ("redis://:s3cret@127.0.0.1:6379/0?shards=4&shards=8", "shards"),
    ("redis://:s3cret@127.0.0.1:port/0", "port"),
    ("redis://:s3cret@127.0.0.1:6379/zero", "database"),
    ("redis://:s3cret@h1:6379,h2:6379/0", "cluster"),
    ("redis+cluster://:s3cret@h1:7000,h2:7001/3", "database"),
    ("redis://s3cret@127.0.0.1:6379/0", "password"),
    ("redis://:s3cret@/0", "host"),
    ("memcached://:s3cret@127.0.0.1:11211", "scheme"),
]


@pytest.mark.parametrize(("url", "named"), BAD_URLS)
def test_redis_bad_urls_are_refused_without_the_password(url: str, named: str) -> None:
    with pytest.raises(ValueError, match=named) as caught:
        RedisStore.from_url(url)
    assert "s3cret" not in str(caught.value)


async def test_redis_repr_hides_the_password() -> None:
    stores = [
        RedisStore.from_url("redis://admin:s3cret@127.0.0.1:6379/2"),
        RedisStore.from_url("rediss://:p%40ss@127.0.0.1:6380/0?shards=4&timeout=1"),
        RedisStore.from_url("redis+cluster://:s3cret@10.0.0.1:7000,10.0.0.2:7001?shards=32"),
        open_store("rediss+cluster://u:s3cret@[::1]:7000"),
    ]
    try:
        assert [repr(s) for s in stores] == [
            "RedisStore('redis://admin:***@127.0.0.1:6379/2', shards=16)",
            "RedisStore('rediss://:***@127.0.0.1:6380/0', shards=4)",
            "RedisStore('redis+cluster://:***@10.0.0.1:7000,10.0.0.2:7001', shards=32)",
            "RedisStore('rediss+cluster://u:***@[::1]:7000', shards=16)",
        ]
    finally:
        for store in stores:
            await store.close()


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
async def test_redis_down_is_unavailable_quickly(scheme: str) -> None:
    port = free_port()
    tail = "/0" if scheme == "redis" else ""
    store = RedisStore.from_url(f"{scheme}://:s3cret@127.0.0.1:{port}{tail}?timeout=0.5")
    try:
        attempts: list[Callable[[], Awaitable[object]]] = [
            store.ping,
            lambda: store.append(draft()),
            store.count,
        ]
        for attempt in attempts:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                await attempt()
            assert time.monotonic() - started < 3.0
            assert "s3cret" not in str(caught.value)
            assert "unavailable" in str(caught.value)
    finally:
        await store.close()


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
async def test_redis_that_does_not_answer_times_out(scheme: str) -> None:
    """A server that takes the connection but never answers costs one timeout, no more."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    tail = "/0" if scheme == "redis" else ""
    store = RedisStore.from_url(f"{scheme}://:s3cret@127.0.0.1:{port}{tail}?timeout=0.5")
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            await store.append(draft())
        assert 0.4 < time.monotonic() - started < 1.5
        assert "s3cret" not in str(caught.value)
    finally:
        await store.close()
        silent.close()


async def test_redis_store_recovers_when_the_server_is_back(
    redis_server: RedisServer, redis_url: str
) -> None:
    store = RedisStore.from_url(redis_url + "?timeout=1")
    try:
        first = await store.append(draft(0, cid(1)))
        redis_server.kill()
        try:
            with pytest.raises(StoreUnavailable):
                await store.append(draft(1, cid(1)))
        finally:
            redis_server.start()
        # Pooled connections died with the server: the store reconnects by itself.
        again = await store.append(draft(2, cid(1)))
        assert (again.seq, again.prev_hash) == (first.seq + 1, first.hash)
        report = await store.verify()
        assert report.ok and report.checked == 2
    finally:
        await store.close()


async def test_closed_store_refuses_work(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url)
    await store.ping()
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.count()


# -- the merge helper -------------------------------------------------------------------------


async def _batches(*batches: list[int]) -> AsyncIterator[list[int]]:
    for batch in batches:
        await asyncio.sleep(0)
        yield batch


async def test_merge_batches_merges_sorted_sources() -> None:
    sources = [
        _batches([1, 4], [], [9, 12]),
        _batches(),
        _batches([2, 3, 5], [6]),
        _batches([], [0, 20]),
    ]
    merged = [n async for n in merge_batches(sources, lambda n: n)]
    assert merged == [0, 1, 2, 3, 4, 5, 6, 9, 12, 20]


async def test_merge_batches_yields_everything_of_unsorted_sources() -> None:
    sources = [_batches([5, 1, 9], [2, 0]), _batches([3], [8, 4]), _batches([7, 6])]
    merged = [n async for n in merge_batches(sources, lambda n: n)]
    assert sorted(merged) == list(range(10))


async def test_merge_batches_stops_its_sources_when_left() -> None:
    closed: list[int] = []

    async def source(index: int) -> AsyncIterator[list[int]]:
        try:
            for start in range(0, 100, 10):
                yield [index + 100 * n for n in range(start, start + 10)]
        finally:
            closed.append(index)

    merging = cast(AsyncGenerator[int, None], merge_batches([source(0), source(1)], lambda n: n))
    async with contextlib.aclosing(merging) as merged:
        taken = [n async for n in _take(merged, 5)]
    assert taken == [0, 1, 100, 101, 200]
    assert sorted(closed) == [0, 1]


async def _take(source: AsyncIterator[int], count: int) -> AsyncIterator[int]:
    async for item in source:
        yield item
        count -= 1
        if count == 0:
            return


def test_chain_of_is_stable() -> None:
    assert chain_of("visitor-000001", 16) == chain_of("visitor-000001", 16)
    assert {chain_of(cid(n), 16) for n in range(200)} == set(range(16))
    assert {chain_of(cid(n), 1) for n in range(20)} == {0}
