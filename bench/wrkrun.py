"""Run wrk (Debian package ``wrk``) and read its report into a dict."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def require_wrk() -> None:
    """Exit with a hint when wrk is missing."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    assert match, text
    return round(float(match.group(1)) * _UNITS[match.group(2)], 3)


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> dict[str, Any]:
    """Requests, rate, p50 and p99 latency, non-2xx answers, socket errors, and the status
    counts a script prints as ``STATUSES {json}``."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^[ \t]+(50|99)%[ \t]+(\S+)[ \t]*$", out, re.M))
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if len(latency) != 2 or not rate or not total:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    statuses = re.search(r"^STATUSES (\{.*\})$", out, re.M)
    errors = re.search(r"Socket errors: (.*)$", out, re.M)
    return {
        "requests": int(total.group(1)),
        "requests_per_s": float(rate.group(1)),
        "p50_ms": _ms(latency["50"]),
        "p99_ms": _ms(latency["99"]),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "statuses": json.loads(statuses.group(1)) if statuses else None,
        "socket_errors": errors.group(1) if errors else None,
    }
