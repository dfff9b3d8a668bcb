"""The wheel, as a deployment gets it: built from the checkout, installed (not editable) into a
fresh virtual environment with only its own dependencies, it migrates and serves."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, stop, wait_until_up

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "originlive"


# The environment of what the tests run, with none of the checkout's settings or paths.
ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith("ORIGINLIVE_") and k not in {"PYTHONPATH", "VIRTUAL_ENV"}
}


def pip(*args: str) -> None:
    """This environment's pip; what pip downloads it takes from the index and its cache."""
    command = [sys.executable, "-m", "pip", "--no-input", "--quiet", *args]
    done = subprocess.run(
        command, env=ENV, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    pip("wheel", "--no-deps", "--wheel-dir", str(out), str(ROOT))
    (built,) = out.glob("originlive-*.whl")
    return built


def test_wheel_holds_every_file_of_the_package(wheel: Path) -> None:
    """Templates, static files, translations, data files and migrations: all of them."""
    shipped = set(zipfile.ZipFile(wheel).namelist())
    files = (p.relative_to(PACKAGE) for p in PACKAGE.rglob("*") if p.is_file())
    wanted = {
        f"originlive/{p.as_posix()}"
        for p in files
        if "__pycache__" not in p.parts and not p.name.startswith(".")
    }
    assert wanted - shipped == set()
    assert "originlive/migrations/script.py.mako" in shipped
    assert not [name for name in shipped if "__pycache__" in name]


def test_installed_wheel_migrates_and_serves(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    # No pip of its own in the new environment (ensurepip costs seconds): this one installs
    # into it, the wheel and its runtime dependencies only, none of the checkout's.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip("--python", str(venv / "bin" / "python"), "install", str(wheel))

    env = ENV | {"ORIGINLIVE_DATA_DIR": str(tmp_path / "data"), "ORIGINLIVE_RTMP_PORT": "0"}

    def run(*args: str) -> str:
        done = subprocess.run(
            args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    where = run(str(venv / "bin" / "python"), "-c", "import originlive; print(originlive.__file__)")
    assert Path(where.strip()).is_relative_to(venv)  # not the checkout's
    assert "44700 official regions added" in run(str(venv / "bin" / "originlive"), "migrate")

    port = free_port()
    server = subprocess.Popen(
        [str(venv / "bin" / "originlive"), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(server, url)
        login = httpx.get(f"{url}/login", headers={"Accept-Language": "zh-CN"})
        assert login.status_code == 200 and "登录" in login.text  # a template, in Chinese
        assert httpx.get(f"{url}/static/site.css").status_code == 200
    finally:
        stop(server)
