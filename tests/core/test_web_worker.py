"""`core.web_worker.BalancedThreadWorker`: a worker of `ranklab serve` takes new connections
only while it has a free thread, so connections arriving together spread over the workers
instead of piling onto the one that happened to be awake."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.faults.helpers import ranklab_serve, wait_until

WORKERS, THREADS = 2, 2

pytestmark = [
    pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc"),
    pytest.mark.skipif(
        connection.vendor != "sqlite", reason="no database is used: checked once, on SQLite"
    ),
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """`ranklab serve` with two workers of two threads; (master pid, port)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env.update(
        WEB_CONCURRENCY=str(WORKERS),
        WEB_THREADS=str(THREADS),
        DATABASE_URL=f"sqlite:///{tmp_path / 'web.sqlite3'}",
        RANKLAB_DATA_DIR=str(tmp_path),
    )
    with ranklab_serve(env, tmp_path / "web.log", seconds=60) as (process, url):
        wait_until(lambda: len(children(process.pid)) == WORKERS, seconds=30, what="workers")
        yield process.pid, int(url.rsplit(":", 1)[1])


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry))
    return found


def established_inodes(port: int) -> set[str]:
    """Socket inodes of the server's side of established connections on `port`."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == "01":
            inodes.add(fields[9])
    return inodes


def connections_held(pid: int, inodes: set[str]) -> int:
    held = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            held += 1
    return held


def test_busy_connections_arriving_together_spread_over_the_workers(server):
    master, port = server
    clients = []
    for _ in range(WORKERS * THREADS):
        client = socket.create_connection(("127.0.0.1", port))
        # A request whose headers never end: the thread reading it stays busy.
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        clients.append(client)
    try:

        def spread() -> list[int]:
            inodes = established_inodes(port)
            return sorted(connections_held(pid, inodes) for pid in children(master))

        wait_until(lambda: sum(spread()) == WORKERS * THREADS, seconds=10, what="accepted")
        time.sleep(0.5)  # a worker that would take more than its share has had the chance

        assert spread() == [THREADS] * WORKERS
    finally:
        for client in clients:
            client.close()
