"""Helpers for tests that run the platform as a separate process on loopback."""

import socket
import subprocess
import time

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
