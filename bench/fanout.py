"""Live-room fan-out: one poster's comments delivered to thousands of viewers' WebSockets.

For each scenario, starts ``originlive serve`` (one process) on a fresh embedded deployment
(SQLite; the comment rate limit lifted with ``ORIGINLIVE_COMMENT_LIMIT``), opens a shop and
starts a live session, then connects ``viewers`` anonymous WebSockets to the room
(``/ws/live/{id}``; at most ``--in-flight`` handshakes at once; each must receive its first
frame, the room's state) and one poster, a buyer with a token. The poster sends
``events_per_s`` comments a second, evenly spaced on the event loop's clock: ``--warmup``
seconds unmeasured, then, on the same schedule, ``--seconds`` measured ones, each with its
send time in its text (``~t=<time.time()>~``). Every viewer finds that marker in the frame's
bytes and records receive time - send time: the delivery latency, the server's queueing and
the client's own included (one machine, one clock). Then the bench waits (at most
``--drain`` seconds) until every viewer has every comment, and counts what did not arrive.

The viewers are a raw asyncio client (``bench/wsclient.py``, on uvloop): a client built on
the ``websockets`` library costs more CPU per frame than the server, and the load generator
shares the machine (two cores) with the server. They run in ``--client-processes`` processes
(default 1: the server is one process, so one core is the client's; 2 measured no better,
and worse at 10,000 viewers), the poster in the bench's own. On loopback the client's CPU
is about the server's (a ``recv`` and an ACK per frame, ~8 µs, two-thirds of it the
kernel's). ``--probe-every k`` makes only every k-th viewer read at once and record
latencies, the others read every ``--sweep-ms``: the client then costs less than half as
much, but here the server's CPU per delivery rose by 15-25 % (most likely the unread
sockets' delayed ACKs, sent from timers on its core) and its p99 with it, so all viewers
are probes by default. Latencies are kept for every delivery unless ``--sample-every k``.

Per scenario, one JSON object: viewers, events/s, deliveries and deliveries/s (deliveries
over the sending time, or until the last delivery if that came later), deliveries lost,
p50/p90/p99/p99.9/max latency, the server's memory (VmRSS before the viewers, with them,
at the end; VmHWM, its peak since start-up) and CPU seconds (from /proc), the client's CPU
seconds, all cores' CPU by kind and what went to other work on the machine (anything else
running skews the figures: ``machine_busy_before_pct`` and ``other_cpu_s`` say so), the other
frames viewers got by type, and errors or close codes if any.

    python bench/fanout.py [--seconds 10] [--client-processes 1]
    python bench/fanout.py --viewers 2000 --events-per-s 50 [--seconds 10]

By default both scenarios of the issue: 2,000 viewers at 50 comments/s (100,000
deliveries/s; target p99 <= 50 ms) and 10,000 viewers at 10/s (target p99 <= 150 ms), each on
a fresh server process. ``--attach ws://HOST:PORT/ws/live/ID --token TOKEN [--server-pid PID]``
measures a room of a server that is already running instead (its memory and CPU only with
its pid).
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.wsclient import (  # noqa: E402
    Socket,
    Tally,
    connect,
    install_uvloop,
    raise_nofile_limit,
    viewer_process,
)

from originlive.bootstrap import migrate  # noqa: E402
from originlive.settings import Settings  # noqa: E402
from tests.crowd import go_live, make_buyers, merchant_with_shop  # noqa: E402
from tests.servers import free_port, serve, stop, wait_until_up  # noqa: E402

PASSWORD = "bench-password"
# The scenarios: (viewers, comments per second, p99 target in ms).
SCENARIOS = [(2000, 50, 50.0), (10000, 10, 150.0)]
_TICK = os.sysconf("SC_CLK_TCK")


# /proc readings


def _status_mb(pid: int, field: str) -> float:
    """VmRSS or VmHWM of a process, in MiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICK


_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def _machine() -> dict[str, int]:
    """Jiffies of all cores so far, by kind (/proc/stat)."""
    values = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    return dict(zip(_FIELDS, map(int, values), strict=True))


def _busy(since: dict[str, int]) -> tuple[dict[str, float], float]:
    """CPU seconds of all cores since then by kind (idle left out), and the busy share."""
    now = _machine()
    spent = {k: (now[k] - since[k]) / _TICK for k in _FIELDS}
    idle = spent.pop("idle") + spent.pop("iowait")
    busy = sum(spent.values())
    return {k: round(v, 2) for k, v in spent.items() if v}, busy / max(busy + idle, 1e-9)


# the scenario


class _Poster:
    """The commenting buyer: sends on an even schedule, samples the server's memory."""

    def __init__(self, sock: Socket, server_pid: int | None) -> None:
        self.sock, self.server_pid = sock, server_pid
        self.peak_rss_mb = 0.0

    async def post(
        self, rate: float, warmup: float, seconds: float, measuring: Callable[[], None]
    ) -> tuple[int, float]:
        """Post for ``warmup`` seconds, call ``measuring`` and post for ``seconds`` more on the
        same schedule (a pause would let the machine idle, and the first measured second pay
        for waking it). The measured comments sent, and the seconds from the first of them to
        the scheduled end (or to the last send if that was later)."""
        loop = asyncio.get_running_loop()
        unmeasured, total = round(rate * warmup), round(rate * seconds)
        start = measured_from = loop.time()
        next_sample = start
        for i in range(unmeasured + total):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if i == unmeasured:
                measuring()
                measured_from = loop.time()
            now = time.time()
            text = f"~t={now:.6f}~" if i >= unmeasured else f"~w={now:.6f}~"
            self.sock.send_text(json.dumps({"type": "comment", "text": text}))
            if self.server_pid and loop.time() >= next_sample:
                self.peak_rss_mb = max(self.peak_rss_mb, _status_mb(self.server_pid, "VmRSS"))
                next_sample += 0.25
        if total == 0:
            measuring()
        return total, max(seconds, loop.time() - measured_from)


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def _merge(counters: list[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counters:
        total.update(c)
    return dict(total)


async def _recv(conn: Connection) -> Any:
    return await asyncio.to_thread(conn.recv)


async def measure(
    ws_url: str,
    token: str,
    viewers: int,
    rate: float,
    args: argparse.Namespace,
    server_pid: int | None,
) -> dict[str, Any]:
    """Connect the viewers and the poster to the room, post, count; the scenario's figures."""
    context = multiprocessing.get_context("spawn")
    processes = max(1, min(args.client_processes, viewers))
    pipes: list[Connection] = []
    children = []
    # A quiet viewer is read when about four comments wait for it (between 50 and 500 ms).
    sweep_s = args.sweep_ms / 1000 if args.sweep_ms else min(0.5, max(0.05, 4 / rate))
    rss_idle = _status_mb(server_pid, "VmRSS") if server_pid else None
    started = time.monotonic()
    for share in _split(viewers, processes):
        mine, theirs = context.Pipe()
        child = context.Process(
            target=viewer_process,
            args=(
                theirs,
                ws_url,
                share,
                max(1, args.in_flight // processes),
                args.sample_every,
                args.probe_every,
                sweep_s,
            ),
            daemon=True,
        )
        child.start()
        theirs.close()
        pipes.append(mine)
        children.append(child)
    try:
        readies = [m[1] for m in await asyncio.gather(*(_recv(p) for p in pipes))]
        connect_s = time.monotonic() - started
        connected = sum(r["connected"] for r in readies)
        rss_connected = _status_mb(server_pid, "VmRSS") if server_pid else None

        if connected == 0:
            raise RuntimeError(f"no viewer got in: {_merge([r['errors'] for r in readies])}")
        poster_tally = Tally()
        try:
            sock = await connect(f"{ws_url}?token={token}", poster_tally)
        except (OSError, TimeoutError, ConnectionError) as exc:
            why = dict(poster_tally.errors) | dict(poster_tally.closes)
            raise RuntimeError(f"the poster did not get in: {exc!r} {why}") from exc
        poster = _Poster(sock, server_pid)
        for p in pipes:
            p.send(("go",))
        await asyncio.gather(*(_recv(p) for p in pipes))  # each has reset its counts
        poster_tally.reset()
        sock.comments = sock.frames = 0
        sock.counting = True
        start: dict[str, Any] = {}

        def measuring() -> None:
            for p in pipes:
                p.send(("mark",))  # CPU from now; the counts ignore warm-up comments anyway
            poster_tally.types.clear()
            start.update(
                server_cpu=_cpu_s(server_pid) if server_pid else 0.0,
                own_cpu=time.process_time(),
                machine=_machine(),
                t0=time.time(),
            )

        sent, post_s = await poster.post(rate, args.warmup, args.seconds, measuring)
        for p in pipes:
            p.send(("stop", sent, args.drain))
        dones = [m[1] for m in await asyncio.gather(*(_recv(p) for p in pipes))]
        machine_cpu, busy_share = _busy(start["machine"])
        server_cpu = _cpu_s(server_pid) - start["server_cpu"] if server_pid else 0.0
        own_cpu = time.process_time() - start["own_cpu"]
        t0 = start["t0"]
        rss_end = _status_mb(server_pid, "VmRSS") if server_pid else None
        hwm = _status_mb(server_pid, "VmHWM") if server_pid else None
        sock.close()
    finally:
        for p in pipes:
            p.close()  # a viewer process still waiting for orders ends at once
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()

    latencies: list[float] = []
    for d in dones:
        latencies.extend(array("d", d["latencies"]))
    latencies.sort()
    deliveries = sum(d["deliveries"] for d in dones)
    counted = sum(d["viewers"] for d in dones)
    last = max((d["last_delivery"] for d in dones), default=0.0)
    window = max(post_s, last - t0)
    client_cpu = sum(d["cpu_s"] for d in dones) + own_cpu
    result: dict[str, Any] = {
        "viewers": viewers,
        "viewers_connected": connected,
        "connect_s": round(connect_s, 2),
        "events_per_s_target": rate,
        "events": sent,
        "events_per_s": round(sent / post_s, 1),
        "deliveries": deliveries,
        "deliveries_per_s": round(deliveries / window),
        "expected_deliveries": sent * counted,
        "lost": sent * counted - deliveries,
        "incomplete_viewers": sum(d["incomplete_viewers"] for d in dones),
        "min_per_viewer": min((d["min_per_viewer"] for d in dones), default=0),
        "max_per_viewer": max((d["max_per_viewer"] for d in dones), default=0),
        "viewers_dropped": sum(d["dropped"] for d in dones),
        "probes": sum(r["probes"] for r in readies),
        "quiet_sweep_ms": round(sweep_s * 1000) if args.probe_every > 1 else None,
        "latency_samples": len(latencies),
        "latency_sampled_every": args.sample_every,
        "p50_ms": _percentile(latencies, 0.50),
        "p90_ms": _percentile(latencies, 0.90),
        "p99_ms": _percentile(latencies, 0.99),
        "p999_ms": _percentile(latencies, 0.999),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
        "server_rss_idle_mb": rss_idle,
        "server_rss_connected_mb": rss_connected,
        "server_rss_mb": rss_end,
        "server_peak_rss_mb": max(hwm or 0.0, poster.peak_rss_mb) if server_pid else None,
        "server_kb_per_viewer": (
            round((rss_connected - rss_idle) * 1024 / max(1, connected), 1)
            if rss_idle is not None and rss_connected is not None
            else None
        ),
        "server_cpu_s": round(server_cpu, 2) if server_pid else None,
        "server_cpu_per_s": round(server_cpu / window, 2) if server_pid else None,
        "client_processes": processes,
        "client_cpu_s": round(client_cpu, 2),
        "client_cpu_user_s": round(sum(d["cpu_user_s"] for d in dones), 2),
        "machine_busy_pct": round(100 * busy_share, 1),
        # All cores' CPU seconds by kind (softirq: mostly loopback TCP, charged to whichever
        # process was on the core); what the server and the client did not use went to other
        # work on the machine, which skews the figures.
        "machine_cpu_s": machine_cpu,
        "other_cpu_s": (
            round(sum(machine_cpu.values()) - server_cpu - client_cpu, 2) if server_pid else None
        ),
        "poster_received": sock.comments,
        # frames other than comments (a few warm-up comments may still arrive: not counted)
        "other_frames": {
            k: v for k, v in _merge([d["other_frames"] for d in dones]).items() if k != "comment"
        },
        "poster_other_frames": {k: v for k, v in poster_tally.types.items() if k != "comment"},
    }
    errors = _merge([r["errors"] for r in readies] + [d["errors"] for d in dones])
    errors.update({f"poster: {k}": v for k, v in poster_tally.errors.items()})
    closes = _merge([d["closes"] for d in dones] + [dict(poster_tally.closes)])
    if errors:
        result["errors"] = errors
    if closes:
        result["closes"] = closes
    odd = {k: v for k, v in poster_tally.samples.items() if k == "error"}
    if odd:  # what the server said to the poster's comments
        result["poster_samples"] = {k: v.decode("utf-8", "replace") for k, v in odd.items()}
    seen: dict[str, str] = {}
    for d in dones:
        seen |= {k: v[:200] for k, v in d["samples"].items() if k not in ("state", "comment")}
    if seen:  # one frame of each other type the viewers got, as the server sent it
        result["frame_samples"] = seen
    return result


# the deployment


async def _live_room(api: httpx.AsyncClient, number: int) -> int:
    """A merchant's approved shop and a started live session in it; the session's id."""
    email = f"host{number}@example.com"
    merchant = await merchant_with_shop(api, stock=100, password=PASSWORD, email=email)
    return await go_live(api, merchant, title="果园直播")


async def run_served(args: argparse.Namespace, scenarios: list[tuple[int, float]]) -> list[Any]:
    """Each scenario on a fresh server process of one deployment; their figures."""
    work = Path(tempfile.mkdtemp(prefix="originlive-fanout-"))
    settings = Settings(data_dir=work / "data", database_url=None)
    url = settings.resolved_database_url
    await asyncio.to_thread(migrate, url)
    tokens = await make_buyers(url, len(scenarios), password=PASSWORD)
    results = []
    try:
        for number, (viewers, rate) in enumerate(scenarios):
            port = free_port()
            log = (work / f"server-{number}.log").open("wb")
            # The server raises its own open-files limit (cli._raise_open_files_limit).
            server = serve(
                port=port,
                data_dir=settings.data_dir,
                database_url=url,
                log=log,
                COMMENT_LIMIT="100000000",
            )
            base = f"http://127.0.0.1:{port}"
            try:
                await asyncio.to_thread(wait_until_up, server, base)
                async with httpx.AsyncClient(base_url=base, timeout=30) as api:
                    session_id = await _live_room(api, number)
                ws_url = f"ws://127.0.0.1:{port}/ws/live/{session_id}"
                figures = await measure(ws_url, tokens[number], viewers, rate, args, server.pid)
            finally:
                stop(server)
                log.close()
            server_log = (work / f"server-{number}.log").read_text(errors="replace").strip()
            if server_log:
                figures["server_log_tail"] = server_log.splitlines()[-20:]
            results.append(figures)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results


def _targets(figures: dict[str, Any]) -> None:
    for viewers, rate, p99 in SCENARIOS:
        if figures["viewers"] == viewers and figures["events_per_s_target"] == rate:
            figures["target_p99_ms"] = p99
            figures["target_met"] = bool(
                figures["p99_ms"] is not None
                and figures["p99_ms"] <= p99
                and figures["lost"] == 0
                and figures["deliveries_per_s"] >= 0.99 * viewers * rate
            )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, help="run one scenario: this many viewers")
    parser.add_argument("--events-per-s", type=float, default=10.0, help="with --viewers")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured posting time")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured posting first")
    parser.add_argument("--drain", type=float, default=10.0, help="longest wait for stragglers")
    parser.add_argument("--client-processes", type=int, default=1, help="viewer processes")
    parser.add_argument("--in-flight", type=int, default=500, help="handshakes at once")
    parser.add_argument(
        "--probe-every",
        type=int,
        default=1,
        help="every k-th viewer a probe (read at once, latencies), the rest quiet (read "
        "every --sweep-ms); 1: all probes",
    )
    parser.add_argument("--sweep-ms", type=float, help="how often quiet viewers are read")
    parser.add_argument(
        "--sample-every", type=int, default=1, help="keep a probe's every k-th latency"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data dir and server logs")
    parser.add_argument("--attach", metavar="WS_URL", help="a running server's room instead")
    parser.add_argument("--token", help="with --attach: the poster's bearer token")
    parser.add_argument("--server-pid", type=int, help="with --attach: for memory and CPU")
    args = parser.parse_args()
    raise_nofile_limit()
    before = _machine()
    await asyncio.sleep(1)
    _, busy_before = _busy(before)
    if args.viewers:
        scenarios = [(args.viewers, args.events_per_s)]
    else:
        scenarios = [(viewers, float(rate)) for viewers, rate, _ in SCENARIOS]

    if args.attach:
        if not args.token:
            parser.error("--attach needs --token")
        results = []
        for viewers, rate in scenarios:
            results.append(
                await measure(args.attach, args.token, viewers, rate, args, args.server_pid)
            )
    else:
        results = await run_served(args, scenarios)
    for figures in results:
        _targets(figures)
    report = {
        "benchmark": "fanout",
        "cores": os.cpu_count(),
        "seconds": args.seconds,
        # the machine's busy share in the second before: anything else running skews the figures
        "machine_busy_before_pct": round(100 * busy_before, 1),
        "scenarios": results,
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    install_uvloop()
    asyncio.run(main())
