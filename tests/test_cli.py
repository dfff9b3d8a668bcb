"""The ``originlive`` command, run as a user would: migrate, create-operator, serve."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, stop, wait_until_up

ORIGINLIVE = str(Path(sys.executable).with_name("originlive"))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An embedded deployment of its own in a temporary data directory."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ORIGINLIVE_")}
    return environ | {"ORIGINLIVE_DATA_DIR": str(tmp_path / "data")}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ORIGINLIVE, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_migrate_is_idempotent(env: dict[str, str]) -> None:
    first = run(env, "migrate")
    assert first.returncode == 0, first.stderr
    assert "44700 official regions added" in first.stdout
    again = run(env, "migrate")
    assert again.returncode == 0, again.stderr
    assert "0 official regions added" in again.stdout
    assert (Path(env["ORIGINLIVE_DATA_DIR"]) / "originlive.db").exists()


def test_create_operator_then_serve(env: dict[str, str]) -> None:
    assert run(env, "migrate").returncode == 0
    short = run(env, "create-operator", "--email", "op@example.com", "--password", "short")
    assert short.returncode != 0 and "8 characters" in short.stderr
    made = run(env, "create-operator", "--email", "op@example.com", "--password", "long enough")
    assert made.returncode == 0, made.stderr

    port = free_port()
    server = subprocess.Popen(
        [ORIGINLIVE, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(server, url)
        token = httpx.post(
            f"{url}/api/v1/auth/token",
            data={"username": "op@example.com", "password": "long enough"},
        )
        assert token.status_code == 200, token.text
        me = httpx.get(
            f"{url}/api/v1/auth/me",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
        assert "operator" in me.json()["roles"]
    finally:
        stop(server)
