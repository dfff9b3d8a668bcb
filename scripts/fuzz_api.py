"""Fuzz the JSON API with Schemathesis, once per role, against a demo server of its own.

Starts ``originlive demo`` on free loopback ports with a temporary data directory (embedded
SQLite unless ``--database-url``), signs in the demo's buyer, a merchant and the operator,
and runs ``schemathesis run`` on ``/openapi.json`` as each (and, with ``--roles``, anonymous),
one after another against the same server. Prints one JSON object: per role the requests
sent, operations tested, server errors (5xx) by route with the first few reproduced, other
check failures by check name, tracebacks in the server's log, seconds; and the totals. Exits
1 if any answer was a 5xx, 2 if the run itself failed or the server died. A tool, not a test
(issue 15).

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python scripts/fuzz_api.py [--max-examples 20] [--seed 15] [--roles ...]

Everything stays on 127.0.0.1; the server's log, Schemathesis's output and its reports are
kept in the temporary directory, whose path is printed (``work_dir``).
"""

import argparse
import base64
import importlib.util
import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import free_port, stop, wait_until_up  # noqa: E402

PASSWORD = "originlive-demo"
ACCOUNTS = {
    "anonymous": None,
    "buyer": "buyer@example.com",
    "merchant": "wugong@example.com",
    "operator": "operator@example.com",
}
# The operator runs last: rejecting shops is its job, and would leave the others less to test.
ORDER = ("anonymous", "buyer", "merchant", "operator")
# Logging out revokes the run's own token: everything after it would be anonymous.
EXCLUDED_PATHS = ("/api/v1/auth/logout",)
# Status and content-type conformance only say that FastAPI's schema lists 200 and 422 and
# application/json where the API answers 401/403/404/409 with application/problem+json;
# ignored_auth counts every public read that also takes a token. What is left finds bugs.
CHECKS = "not_a_server_error,response_schema_conformance,negative_data_rejection"
LOG_MARKERS = ("Traceback", "Exception in ASGI")
SHOWN = 5  # reproductions of server errors per role


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=20, help="per operation and phase")
    parser.add_argument("--seed", type=int, default=15, help="the same seed sends the same run")
    parser.add_argument(
        "--roles",
        default="buyer,merchant,operator",
        help=f"comma-separated, from {', '.join(ORDER)}",
    )
    parser.add_argument("--merchant", default=ACCOUNTS["merchant"], help="the merchant's email")
    parser.add_argument("--checks", default=CHECKS, help="Schemathesis checks ('all' for all)")
    parser.add_argument("--phases", help="Schemathesis phases (default: all of them)")
    parser.add_argument("--workers", default="1", help="Schemathesis workers (1-64 or auto)")
    parser.add_argument(
        "--exclude-path",
        action="append",
        default=list(EXCLUDED_PATHS),
        help="a path (as in the schema) not to test; repeatable",
    )
    parser.add_argument("--database-url", help="e.g. postgresql+asyncpg://... (an empty database)")
    parser.add_argument("--redis-url", help="run with Redis, e.g. redis://127.0.0.1:6379/9")
    args = parser.parse_args()
    args.roles = [r for r in ORDER if r in args.roles.split(",")]
    if not args.roles:
        parser.error(f"--roles: none of {', '.join(ORDER)}")
    return args


def _start(args: argparse.Namespace, work: Path, port: int) -> subprocess.Popen[bytes]:
    """``originlive demo`` (beside this Python), with only these ``ORIGINLIVE_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORIGINLIVE_")} | {
        "ORIGINLIVE_DATA_DIR": str(work / "data"),
        "ORIGINLIVE_HOST": "127.0.0.1",
        "ORIGINLIVE_RTMP_HOST": "127.0.0.1",
        "ORIGINLIVE_RTMP_PORT": str(free_port()),
        # The hooks are open to anyone while no secret is set; a deployment that uses them sets
        # one. The fuzzer is not told it: their fields are not in the schema, so past the
        # secret it could only send empty bodies.
        "ORIGINLIVE_MEDIA_HOOK_SECRET": secrets.token_urlsafe(24),
        # Errors and their tracebacks, not a line per request.
        "ORIGINLIVE_LOG_LEVEL": "warning",
    }
    if args.database_url:
        env["ORIGINLIVE_DATABASE_URL"] = args.database_url
    if args.redis_url:
        env["ORIGINLIVE_REDIS_URL"] = args.redis_url
    command = [str(Path(sys.executable).with_name("originlive")), "demo", "--port", str(port)]
    with (work / "server.log").open("wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)


def _email(args: argparse.Namespace, role: str) -> str | None:
    return args.merchant if role == "merchant" else ACCOUNTS[role]


def _token(base: str, email: str) -> str:
    # trust_env=False: no proxy from the environment, the request stays on loopback.
    with httpx.Client(base_url=base, trust_env=False, timeout=30) as client:
        answer = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
        answer.raise_for_status()
        token: str = answer.json()["access_token"]
        return token


def _schemathesis(
    args: argparse.Namespace, base: str, token: str | None, reports: Path
) -> tuple[int, float]:
    """Run ``schemathesis run`` into ``reports``; its exit code and the seconds it took."""
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json"),
        *("--checks", args.checks, "--max-examples", str(args.max_examples)),
        *("--seed", str(args.seed), "--workers", args.workers),
        # Each run starts from its seed alone, not from examples an earlier run stored; and an
        # operation's first failure does not end its testing, so every 5xx is counted.
        *("--generation-database", "none", "--continue-on-failure"),
        *("--report", "json,ndjson", "--report-dir", str(reports), "--no-color"),
    ]
    for path in args.exclude_path:
        command += ["--exclude-path", path]
    if args.phases:
        command += ["--phases", args.phases]
    if token is not None:
        command += ["--header", f"Authorization: Bearer {token}"]
    # NO_PROXY: Schemathesis's requests go straight to the server on loopback.
    env = os.environ | {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    reports.mkdir(parents=True)
    started = time.monotonic()
    with (reports / "schemathesis.txt").open("wb") as out:
        # cwd: whatever Schemathesis writes of its own lands in the work directory.
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=reports)
    return code.returncode, time.monotonic() - started


def _body(request: dict[str, Any]) -> str | None:
    body = request.get("body")
    if not body:
        return None
    if isinstance(body, dict) and "$base64" in body:
        return base64.b64decode(body["$base64"]).decode("utf-8", "replace")
    return str(body.get("string", body) if isinstance(body, dict) else body)


def _reproduction(label: str, interaction: dict[str, Any]) -> dict[str, Any]:
    """What was sent and what came back, and the same request as a curl command line (the
    role's token in ``$TOKEN``)."""
    request, response = interaction["request"], interaction.get("response") or {}
    curl = ["curl", "-i", "-X", shlex.quote(request["method"])]
    for name, values in request.get("headers", {}).items():
        if name.lower() == "authorization":
            curl += ["-H", '"Authorization: Bearer $TOKEN"']
        else:
            curl += ["-H", shlex.quote(f"{name}: {values[0]}")]
    body = _body(request)
    if body is not None:
        curl += ["--data-binary", shlex.quote(body)]
    curl.append(shlex.quote(request["uri"]))
    return {
        "operation": label,
        "method": request["method"],
        "url": request["uri"],
        "status": response.get("status_code"),
        "body": body,
        "curl": " ".join(curl),
    }


def _figures(reports: Path) -> dict[str, Any]:
    """A role's figures from the run's NDJSON events and its JSON report."""
    statuses: Counter[str] = Counter()
    server_errors: Counter[str] = Counter()
    shown: list[dict[str, Any]] = []
    failures: dict[str, Counter[str]] = {}
    for line in next(reports.glob("ndjson-*.ndjson")).open(encoding="utf-8"):
        recorder = json.loads(line).get("ScenarioFinished", {}).get("recorder", {})
        label = recorder.get("label", "")
        for interaction in recorder.get("interactions", {}).values():
            status = (interaction.get("response") or {}).get("status_code")
            statuses[f"{status // 100}xx" if status else "no answer"] += 1
            if status and status >= 500:
                server_errors[label] += 1
                if len(shown) < SHOWN:
                    shown.append(_reproduction(label, interaction))
        for results in recorder.get("checks", {}).values():
            for check in results:
                if check["status"] == "failure" and check["name"] != "not_a_server_error":
                    failures.setdefault(check["name"], Counter())[label] += 1
    report = json.loads(next(reports.glob("json-*.json")).read_text(encoding="utf-8"))
    return {
        "requests": sum(statuses.values()),
        "answers": dict(sorted(statuses.items())),
        "operations": {k: report["operations"][k] for k in ("selected", "tested", "errored")},
        "test_cases": report["test_cases"]["generated"],
        "server_errors": {
            "count": sum(server_errors.values()),
            "by_operation": dict(server_errors.most_common()),
            "first": shown,
        },
        "check_failures": {
            name: {"count": sum(c.values()), "by_operation": dict(c.most_common())}
            for name, c in sorted(failures.items())
        },
        "errors": report["errors"],
        # Schemathesis's warnings, by the number of operations each names.
        "warnings": {name: len(ops) for name, ops in report["warnings"].items() if ops},
        "stop_reason": report["stop_reason"],
    }


def _log_counts(log: Path, start: int, end: int) -> dict[str, int]:
    with log.open("rb") as f:
        f.seek(start)
        text = f.read(end - start).decode("utf-8", "replace")
    return {marker: text.count(marker) for marker in LOG_MARKERS}


def _run_role(
    args: argparse.Namespace, base: str, work: Path, role: str, token: str | None
) -> dict[str, Any]:
    log = work / "server.log"
    before = log.stat().st_size
    reports = work / role
    code, seconds = _schemathesis(args, base, token, reports)
    figures: dict[str, Any] = {"account": _email(args, role)}
    try:
        figures |= _figures(reports)
    except (StopIteration, KeyError, ValueError) as exc:
        figures["failed"] = f"no reports ({exc!r}): see {reports / 'schemathesis.txt'}"
    figures |= {
        "server_log": _log_counts(log, before, log.stat().st_size),
        "schemathesis_exit": code,
        "schemathesis_output": str(reports / "schemathesis.txt"),
        "seconds": round(seconds, 1),
    }
    print(f"{role}: {figures.get('requests', '?')} requests in {seconds:.0f} s", file=sys.stderr)
    return figures


def _totals(roles: dict[str, dict[str, Any]], seconds: float) -> dict[str, Any]:
    done = [r for r in roles.values() if "failed" not in r]
    checks: Counter[str] = Counter()
    for role in done:
        checks.update({name: f["count"] for name, f in role["check_failures"].items()})
    return {
        "requests": sum(r["requests"] for r in done),
        "server_errors": sum(r["server_errors"]["count"] for r in done),
        "check_failures": dict(sorted(checks.items())),
        "server_log": {m: sum(r["server_log"][m] for r in roles.values()) for m in LOG_MARKERS},
        "seconds": round(seconds, 1),
    }


def main() -> int:
    args = _arguments()
    if importlib.util.find_spec("schemathesis") is None:
        sys.exit("Schemathesis is not installed: .venv/bin/pip install -e '.[fuzz]'")
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="originlive-fuzz-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    print(f"work dir {work}; server log {work / 'server.log'}", file=sys.stderr)
    server = _start(args, work, port)
    try:
        # The demo migrates and loads its shops (hashing their passwords) before it listens.
        try:
            wait_until_up(server, base, timeout=180)
        except RuntimeError as exc:
            print(f"{exc}: see {work / 'server.log'}", file=sys.stderr)
            return 2
        # Every token first: the fuzzer's failed sign-ins soon rate-limit this address.
        tokens = {r: _token(base, e) if (e := _email(args, r)) else None for r in args.roles}
        roles = {r: _run_role(args, base, work, r, tokens[r]) for r in args.roles}
        # A server that died mid-run answered nothing after: worse than any 5xx.
        server_exit = server.poll()
    finally:
        stop(server)
    result = {
        "schemathesis": version("schemathesis"),
        "max_examples": args.max_examples,
        "seed": args.seed,
        "checks": args.checks.split(","),
        "excluded_paths": args.exclude_path,
        "database": "postgresql" if args.database_url else "sqlite",
        "redis": bool(args.redis_url),
        "work_dir": str(work),
        "server_log": str(work / "server.log"),
        "server_exit": server_exit,
        "roles": roles,
        "totals": _totals(roles, time.monotonic() - started),
    }
    print(json.dumps(result, ensure_ascii=False, indent=2))
    if server_exit is not None or any("failed" in r for r in roles.values()):
        return 2
    return 1 if result["totals"]["server_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
