"""Helpers for tests that run the platform as a separate process on loopback."""

import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


def serve(
    *,
    port: int,
    data_dir: Path,
    database_url: str,
    log: IO[bytes],
    workers: int = 1,
    **settings: str,
) -> subprocess.Popen[bytes]:
    """``originlive serve`` (the command beside this Python) on a port, with only these
    ``ORIGINLIVE_*`` settings: the deployment's, auto-approved shops, warning logs, and any
    given as keywords (``REDIS_URL="..."``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORIGINLIVE_")} | {
        "ORIGINLIVE_DATA_DIR": str(data_dir),
        "ORIGINLIVE_DATABASE_URL": database_url,
        "ORIGINLIVE_AUTO_APPROVE_SHOPS": "true",
        "ORIGINLIVE_LOG_LEVEL": "warning",
    }
    env |= {f"ORIGINLIVE_{name}": value for name, value in settings.items()}
    command = [str(Path(sys.executable).with_name("originlive")), "serve"]
    return subprocess.Popen(
        [*command, "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def xdist_worker() -> tuple[int, int]:
    """This test process's index among the run's pytest-xdist workers, and their number;
    ``(0, 1)`` without xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return 0, 1
    return int(worker[2:]), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


_handed_out: set[int] = set()
_random = random.Random()


def _ephemeral_ports() -> range:
    """The ports the kernel picks from for ``bind`` to port 0 and for outgoing connections."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, for a server to take.

    The port is free when this returns, but the server takes it later: meanwhile nothing else
    of the run may be given it. So it is picked at random below the kernel's ephemeral range,
    where no ``bind`` to port 0 (the RTMP ingests of in-process apps, say) and no outgoing
    connection can land; never one this process handed out before; and under pytest-xdist
    only from this worker's share (port modulo the number of workers), so that no other
    worker is given it either."""
    index, workers = xdist_worker()
    ephemeral = _ephemeral_ports()
    candidates = range(max(1024, ephemeral.start // 2), ephemeral.start)
    if len(candidates) < 1000:  # an unusual ephemeral range: take one of the kernel's
        candidates = ephemeral
    mine = [p for p in candidates if p % workers == index and p not in _handed_out]
    for port in _random.sample(mine, len(mine)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port left for this test process")


def wait_until_up(server: subprocess.Popen[bytes], url: str, timeout: float = 30) -> None:
    """Return once ``/healthz`` answers; raise with the server's output if it died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output = server.stdout.read().decode() if server.stdout else "(see its log)"
            raise RuntimeError(f"the server exited with {server.returncode}:\n{output}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer at {url} within {timeout} s")


def stop(server: subprocess.Popen[bytes]) -> None:
    """Terminate the server, killing it if it does not stop within ten seconds."""
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


class RedisServer:
    """A redis-server of the test's own on a free port, which the test may stop and restart.

    Like the machine's Redis here it keeps nothing on disk: a restart starts empty.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), *options, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: everything it held is gone."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


async def recreate_database(admin_url: str, name: str) -> str:
    """A new empty PostgreSQL database beside the admin one (dropped first if it exists);
    its URL."""
    await drop_database(admin_url, name)
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    return urlsplit(admin_url)._replace(path=f"/{name}").geturl()


async def drop_database(admin_url: str, name: str) -> None:
    """Drop the database beside the admin one, connections and all."""
    await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(admin_url: str, statement: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()
