"""A real Redis Cluster on loopback: three masters, no replicas, for tests and benchmarks.

Each master is a :class:`~tests.redis_server.RedisServer` started in cluster mode; ``redis-cli
--cluster create`` splits the 16384 slots between them. ``cluster-require-full-coverage no`` lets
the two live masters keep serving their slots while the third is down, as a managed cluster is
configured for availability. Works with ``valkey-server`` / ``valkey-cli`` too (``binary=``).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time

import redis
from redis.crc import key_slot

from tests.redis_server import RedisServer

_CLUSTER_OPTIONS = (
    "--cluster-enabled",
    "yes",
    "--cluster-require-full-coverage",
    "no",
    "--cluster-node-timeout",
    "1000",
)


def _cluster_port() -> int:
    """A free port whose cluster-bus twin (the port + 10000) is free too; both below 65536."""
    for _ in range(200):
        port = random.randint(20000, 55000)
        if all(_free(candidate) for candidate in (port, port + 10000)):
            return port
    raise RuntimeError("no free pair of ports for a Redis cluster node")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class RedisCluster:
    """Three cluster-mode servers and the cluster made of them, owned by the test session."""

    def __init__(self, server: str = "redis-server", cli: str = "redis-cli") -> None:
        cli_path = shutil.which(cli)
        if cli_path is None:
            raise RuntimeError(f"{cli} is not installed: run the tests with `make test`, which installs it")
        self.cli = cli_path
        self.nodes = [RedisServer(_cluster_port(), binary=server, options=_CLUSTER_OPTIONS) for _ in range(3)]
        self.created = False

    @property
    def url(self) -> str:
        """The settings string RedisCache reads as a cluster: any one node, the rest are discovered."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> None:
        """Start every node; the first time, make the cluster of them (later, they rejoin by nodes.conf)."""
        for node in self.nodes:
            if node.process is None:
                node.start()
        if self.created:
            self.wait_until_ok()
            return
        subprocess.run(
            [self.cli, "--cluster", "create", *(f"127.0.0.1:{node.port}" for node in self.nodes), "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=30,
        )
        self.created = True
        self.wait_until_ok()

    def wait_until_ok(self, timeout: float = 20.0) -> None:
        """Wait until every node says the cluster is ok and knows all three masters."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._ok(node) for node in self.nodes):
                return
            time.sleep(0.05)
        raise RuntimeError("the Redis cluster did not become ready")

    def _ok(self, node: RedisServer) -> bool:
        info = subprocess.run(
            [self.cli, "-p", str(node.port), "cluster", "info"], capture_output=True, text=True, timeout=5
        ).stdout
        return "cluster_state:ok" in info and "cluster_known_nodes:3" in info and "cluster_slots_ok:16384" in info

    def ensure_running(self) -> None:
        """Start any node a test stopped, thaw any it froze, and wait for the cluster to be ok."""
        restarted = False
        for node in self.nodes:
            node.thaw()
            if node.process is None or node.process.poll() is not None:
                node.start()
                restarted = True
        if restarted:
            self.wait_until_ok()

    def flush(self) -> None:
        for node in self.nodes:
            subprocess.run([self.cli, "-p", str(node.port), "flushall"], check=True, capture_output=True, timeout=5)

    def node_of(self, key: str) -> RedisServer:
        """The master serving ``key``'s slot (by the nodes' own CLUSTER SLOTS)."""
        slot = key_slot(key.encode())
        with redis.Redis(port=self.nodes[0].port, socket_timeout=2) as client:
            ranges = client.execute_command("CLUSTER SLOTS")
        for first, last, master, *_ in ranges:
            if first <= slot <= last:
                port = int(master[1])
                return next(node for node in self.nodes if node.port == port)
        raise RuntimeError(f"no node serves slot {slot}")

    def stop(self) -> None:
        """Kill every node (the whole cluster is down, as a single Redis is when stopped)."""
        for node in self.nodes:
            node.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        for node in self.nodes:
            node.freeze()

    def thaw(self) -> None:
        for node in self.nodes:
            node.thaw()
