"""The real Redis test servers: a single server that keeps data over SIGKILL, and a cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import redis.cluster
from redis.crc import key_slot

from tests.redis_servers import RedisCluster, RedisReplyError, RedisServer, command, flush

#: Keys with different hash tags, so they map to different slots (and, spread over three
#: masters, to different nodes).
TAGGED_KEYS = [f"{{tag-{n}}}:consent" for n in range(12)]


@pytest.fixture
def cluster_client(redis_cluster: RedisCluster) -> Iterator[redis.cluster.RedisCluster]:
    first = redis_cluster.nodes[0]
    with redis.cluster.RedisCluster(host="127.0.0.1", port=first.port) as client:
        yield client


def test_single_server_set_get(redis_server: RedisServer) -> None:
    assert redis_server.running
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.set("greeting", "moin")
        assert client.get("greeting") == b"moin"
        assert client.get("missing") is None


def test_data_survives_sigkill_and_restart(redis_server: RedisServer) -> None:
    with redis.Redis.from_url(redis_server.url) as client:
        client.set("durable", "written before the kill")
        client.rpush("ledger", "a", "b", "c")
    old_pid = redis_server.pid
    try:
        redis_server.kill()
        assert not redis_server.running
        assert redis_server.pid is None
        with pytest.raises(ConnectionRefusedError):  # nobody listens any more
            command(redis_server.port, "PING")
    finally:
        redis_server.restart()
    assert redis_server.running
    assert redis_server.pid not in (None, old_pid)
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.get("durable") == b"written before the kill"
        assert client.lrange("ledger", 0, -1) == [b"a", b"b", b"c"]


async def test_flush_empties_the_single_server(redis_server: RedisServer) -> None:
    with redis.Redis.from_url(redis_server.url) as client:
        client.set("doomed", "1")
        assert client.dbsize() > 0
        await flush(redis_server.url)
        assert client.dbsize() == 0


def test_cluster_url_names_every_master(redis_cluster: RedisCluster) -> None:
    addresses = [f"127.0.0.1:{node.port}" for node in redis_cluster.nodes]
    assert len(set(addresses)) == 3
    assert redis_cluster.url == "redis+cluster://" + ",".join(addresses)
    for node in redis_cluster.nodes:
        assert "cluster_state:ok" in command(node.port, "CLUSTER", "INFO")


def test_hash_tags_spread_over_several_nodes(
    redis_cluster: RedisCluster, cluster_client: redis.cluster.RedisCluster
) -> None:
    owners: dict[str, int] = {}
    for key in TAGGED_KEYS:
        slot = int(command(redis_cluster.nodes[0].port, "CLUSTER", "KEYSLOT", key))
        assert slot == key_slot(key.encode())
        # redis-py leaves get_node_from_key unannotated
        node = cluster_client.get_node_from_key(key)  # type: ignore[no-untyped-call]
        assert node is not None
        owners[key] = int(node.port)
        assert cluster_client.set(key, key.upper())
    assert len(set(owners.values())) >= 2
    # Each key really is stored on the node the slot map names, and nowhere else.
    for key, port in owners.items():
        assert command(port, "GET", key) == key.upper()
        for other in redis_cluster.nodes:
            if other.port != port:
                with pytest.raises(RedisReplyError, match=r"^MOVED "):
                    command(other.port, "GET", key)


def test_cluster_keeps_data_over_restart_all(
    redis_cluster: RedisCluster, cluster_client: redis.cluster.RedisCluster
) -> None:
    cluster_client.set("{restart}:key", "still here")
    old_pids = [node.pid for node in redis_cluster.nodes]
    redis_cluster.restart_all()
    assert all(node.running for node in redis_cluster.nodes)
    assert not {node.pid for node in redis_cluster.nodes} & set(old_pids)
    first = redis_cluster.nodes[0]
    with redis.cluster.RedisCluster(host="127.0.0.1", port=first.port) as client:
        assert client.get("{restart}:key") == b"still here"


async def test_flush_empties_every_cluster_master(
    redis_cluster: RedisCluster, cluster_client: redis.cluster.RedisCluster
) -> None:
    for key in TAGGED_KEYS:
        cluster_client.set(key, "1")
    assert sum(int(command(node.port, "DBSIZE")) for node in redis_cluster.nodes) >= len(
        TAGGED_KEYS
    )
    await flush(redis_cluster.url)
    assert [int(command(node.port, "DBSIZE")) for node in redis_cluster.nodes] == [0, 0, 0]
