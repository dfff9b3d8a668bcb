"""create_app(): routers, middleware and the lifespan that owns engines and clients."""

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from starlette.types import Receive, Scope, Send

from originlive import __version__
from originlive.accounts import api as accounts_api
from originlive.accounts import pages as accounts_pages
from originlive.accounts import security
from originlive.accounts.deps import SESSION_COOKIE
from originlive.accounts.tokencache import TokenCache
from originlive.affiliates import api as affiliates_api
from originlive.affiliates import pages as affiliates_pages
from originlive.asgi import HealthRoute
from originlive.batching import (
    BatchReader,
    BatchWriter,
    create_order_writer,
    create_reader,
    run_checkpoints,
)
from originlive.catalog import api as catalog_api
from originlive.catalog import console as catalog_console
from originlive.catalog import operator as catalog_operator
from originlive.catalog import pages as catalog_pages
from originlive.catalog.storage import LocalImageStorage
from originlive.db import create_engine, create_sessionmaker
from originlive.errors import install_error_handlers
from originlive.ledger import pages as ledger_pages
from originlive.ledger.payouts import api as payouts_api
from originlive.ledger.payouts import sandbox as payout_sandbox
from originlive.ledger.payouts import service as payouts
from originlive.ledger.settlement import api as settlement_api
from originlive.ledger.settlement import service as settlement
from originlive.ledger.statements import api as statements_api
from originlive.ledger.statements import pages as statements_pages
from originlive.live import api as live_api
from originlive.live import console as live_console
from originlive.live import moderation
from originlive.live import operator as live_operator
from originlive.live import pages as live_pages
from originlive.live.control import StopSelling
from originlive.live.rooms import Hub
from originlive.live.socket import LiveRoomRoute, redact_tokens_in_server_logs
from originlive.logistics import api as logistics_api
from originlive.logistics import carrier_api, carriers
from originlive.logistics import console as logistics_console
from originlive.logistics import fastpath as logistics_fastpath
from originlive.logistics import operator as logistics_operator
from originlive.logistics import pages as logistics_pages
from originlive.logistics import station as logistics_station
from originlive.logistics.collection import api as collection_api
from originlive.logistics.collection import console as collection_console
from originlive.logistics.collection import station as collection_station
from originlive.media import api as media_api
from originlive.media.fastpath import HlsRoute
from originlive.media.ingest import Media
from originlive.middleware import BodyLimitMiddleware, NoSniffMiddleware
from originlive.orders import api as orders_api
from originlive.orders import service as orders
from originlive.orders.bulk import AnnouncingPlacer, BulkPlacer, OrderPlacer, WriterPlacer
from originlive.orders.fastpath import FlashOrderRoute
from originlive.orders.gate import Gate, NoGate, RedisGate
from originlive.payments import api as payments_api
from originlive.payments import buy as payments_buy
from originlive.payments import console as payments_console
from originlive.payments import pages as payments_pages
from originlive.payments import sandbox
from originlive.payments.service import WebhookDelivery
from originlive.realtime.broker import Broker, MemoryBroker, RedisBroker
from originlive.realtime.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from originlive.regions import api as regions_api
from originlive.regions import operator as regions_operator
from originlive.routing import Router
from originlive.settings import Settings, get_settings
from originlive.web import pages as web_pages
from originlive.web.assets import StaticRoute
from originlive.web.deps import SessionViewers, SignedIn
from originlive.web.errors import install_html_error_pages
from originlive.web.pagecache import PageCache, PageRoute
from originlive.web.templating import (
    LANG_COOKIE,
    STATIC_DIR,
    LanguageMiddleware,
    compile_templates,
    pick_language,
)

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the database engine and the Redis client for the life of the process."""
    settings: Settings = app.state.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    compile_templates()
    redact_tokens_in_server_logs()  # after uvicorn has set its logging up
    engine = create_engine(settings.resolved_database_url, echo=settings.db_echo)
    app.state.engine = engine
    pages: PageCache = app.state.page_cache
    app.state.sessionmaker = create_sessionmaker(engine, on_commit=pages.committed)
    jobs_engine = create_engine(settings.resolved_database_url, echo=settings.db_echo, jobs=True)
    # the rooms', the media's, the sandbox courier's
    jobs = create_sessionmaker(jobs_engine, on_commit=pages.committed)
    redis: Redis | None = None
    limiter: RateLimiter
    if settings.redis_url:
        # A Redis that is gone must cost a buyer a quick 503, not seconds of redis-py's
        # default ten retries: two quick retries ride out a reconnect, then give up.
        redis = Redis.from_url(
            settings.redis_url,
            socket_timeout=2,
            socket_connect_timeout=1,
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), retries=2),
        )
        await redis.ping()  # fail at start-up, not on the first login
        limiter = RedisRateLimiter(redis)
    else:
        limiter = MemoryRateLimiter()
    app.state.redis = redis
    app.state.rate_limiter = limiter
    app.state.image_storage = LocalImageStorage(settings.media_dir)
    app.state.reader = reader = create_reader(engine)
    app.state.token_cache = TokenCache(reader)
    app.state.session_viewers = viewers = SessionViewers(reader)
    pages.on_forget.append(viewers.forget_users)
    app.state.order_writer = writer = create_order_writer(settings.resolved_database_url)
    # What features above payments add to the buyer's order page (payments/buy.py).
    app.state.order_panels = [ledger_pages.money_panel]
    broker: Broker = RedisBroker(redis) if redis is not None else MemoryBroker()
    banned = settings.banned_words_file or moderation.DEFAULT_LIST
    app.state.hub = hub = Hub(
        broker=broker,
        sessionmaker=jobs,
        limiter=limiter,
        banned_words=moderation.BannedWords.from_file(banned),
        comment_limit=settings.comment_limit,
        comment_window_seconds=settings.comment_window_seconds,
    )
    await hub.start()
    placer: OrderPlacer = (
        WriterPlacer(writer)
        if isinstance(writer, BatchWriter)
        else BulkPlacer(settings.resolved_database_url)
    )
    # Purchases of a session's offers are shown in its room once committed.
    placer = AnnouncingPlacer(placer, hub.order_placed)
    app.state.order_placer = placer
    gate: Gate = RedisGate(redis, reader) if redis is not None else NoGate()
    app.state.gate = gate
    app.state.media = media = Media(
        settings=settings, sessionmaker=jobs, hub=hub, writer=writer, gate=gate
    )
    await media.start()
    # The catalog tells the features above it when a shop or product stops selling.
    app.state.off_sale = StopSelling(hub=hub, writer=writer, gate=gate, media=media)
    # Derived once: the platform's secret may live in a file, read on each call otherwise.
    app.state.sandbox_secret = sandbox.webhook_secret(settings.resolved_secret_key)
    app.state.webhook_delivery = delivery = WebhookDelivery(
        jobs_engine,
        url=settings.resolved_public_url + "/api/v1/payments/sandbox/webhook",
        secret=app.state.sandbox_secret,
    )
    app.state.carrier_secrets = carrier_secrets = carriers.webhook_secrets(settings)
    courier = carriers.SandboxCourier(
        jobs_engine,
        url=settings.resolved_public_url + carriers.WEBHOOK_PATH.format(name=carriers.SANDBOX),
        secret=carrier_secrets[carriers.SANDBOX],
        step_seconds=settings.sandbox_carrier_step_seconds,
    )
    app.state.payout_provider = payout_provider = payout_sandbox.SandboxProvider()
    app.state.payout_secret = payout_sandbox.webhook_secret(settings.resolved_secret_key)
    payout_courier = payout_sandbox.Courier(
        jobs_engine,
        url=settings.resolved_public_url + payout_sandbox.WEBHOOK_PATH,
        secret=app.state.payout_secret,
    )
    interval = settings.sweep_interval_seconds
    if settings.gc_tuning:
        _tune_garbage_collector()
    tasks = [asyncio.create_task(orders.run_sweeper(writer, gate, interval_seconds=interval))]
    if isinstance(gate, RedisGate):
        reconcile = settings.reconcile_interval_seconds
        tasks.append(asyncio.create_task(gate.run_reconciler(interval_seconds=reconcile)))
    if isinstance(reader, BatchReader):  # SQLite: the writer leaves checkpoints to the reader
        tasks.append(asyncio.create_task(run_checkpoints(reader)))
    if settings.settle_interval_seconds:
        settle = settlement.run_forever(
            writer,
            policy=settlement.policy_of(settings),
            interval_seconds=settings.settle_interval_seconds,
        )
        tasks.append(asyncio.create_task(settle))
    if settings.payout_interval_days:
        pay = payouts.run_forever(
            writer,
            payout_provider,
            minimum_fen=settings.payout_minimum_fen,
            interval=timedelta(days=settings.payout_interval_days),
        )
        tasks.append(asyncio.create_task(pay))
    if settings.sandbox_courier:
        tasks.append(asyncio.create_task(delivery.run(interval_seconds=interval)))
        tasks.append(asyncio.create_task(courier.run(interval_seconds=interval)))
        tasks.append(asyncio.create_task(payout_courier.run(interval_seconds=interval)))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await delivery.close()
        await courier.close()
        await payout_courier.close()
        await media.close()
        await hub.close()
        await placer.close()
        await writer.close()
        await reader.close()
        if redis is not None:
            await redis.aclose()
        await jobs_engine.dispose()
        await engine.dispose()


def _tune_garbage_collector() -> None:
    # Measured (bench/flash_sale.py): with CPython's default thresholds the cyclic collector
    # ran so often under a flash sale that p99 latency was 95 ms; with what start-up made
    # frozen out of its sight and a 50,000-allocation first generation, 24 ms, and 13% more
    # orders a second. Nearly everything per request is freed by reference counting anyway.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


class OriginliveApp(FastAPI):
    """FastAPI, with the health check, the flash-order route (``orders/fastpath``), HLS for
    players (``media/fastpath``), shared pages (``web/pagecache``), static files
    (``web/assets``) and the live rooms' sockets (``live/socket``) in front of its whole
    stack."""

    def __init__(self, *, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state.settings = settings
        self.state.page_cache = cache = PageCache(max_age=settings.page_cache_seconds)
        secret = settings.resolved_secret_key
        assets = StaticRoute(super().__call__, directory=STATIC_DIR)
        rooms = LiveRoomRoute(assets, state=self.state)
        pages = PageRoute(
            rooms,
            cache=cache,
            session_cookie=SESSION_COOKIE,
            lang_cookie=LANG_COOKIE,
            language=pick_language,
            viewer=self._viewer,
            csrf=lambda session_token: security.csrf_token(secret, session_token),
        )
        players = HlsRoute(pages, state=self.state)
        orders = FlashOrderRoute(players, state=self.state)
        scans = logistics_fastpath.ScanRoute(orders, state=self.state)  # stations' scans
        # Outermost, so that every response has it: the fast paths', and FastAPI's 500s.
        self._front = NoSniffMiddleware(HealthRoute(scans))

    async def _viewer(self, session_token: str) -> SignedIn | None:
        viewers: SessionViewers = self.state.session_viewers  # the lifespan's
        return await viewers(session_token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._front(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI application for the given settings (the environment's by default)."""
    settings = settings or get_settings()
    app = OriginliveApp(
        settings=settings,
        title="originlive",
        version=__version__,
        summary="Live commerce from the place of origin.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_html_error_pages(app)  # browsers get pages, /api/* keeps problem JSON
    app.add_middleware(LanguageMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    for router in (
        accounts_api.router,
        regions_api.router,
        catalog_api.router,
        orders_api.router,
        live_api.router,
        media_api.router,
        payments_api.router,
        logistics_api.router,
        carrier_api.router,
        collection_api.router,
        affiliates_api.router,
        settlement_api.router,
        payouts_api.router,
        statements_api.router,
        web_pages.router,
        accounts_pages.router,
        catalog_pages.router,
        catalog_console.router,
        catalog_operator.router,
        live_pages.router,
        live_console.router,
        live_operator.router,
        regions_operator.router,
        logistics_operator.router,
        logistics_pages.router,
        payments_pages.router,
        payments_buy.router,
        payments_console.router,
        logistics_console.router,
        logistics_station.router,
        collection_console.router,
        collection_station.router,
        affiliates_pages.router,
        statements_pages.router,
    ):
        if not isinstance(router, Router):  # the quick refusal of other features' paths
            raise TypeError(f"{router!r} is not an originlive.routing.Router")
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    app.mount("/media", StaticFiles(directory=settings.media_dir), name="media")
    return app
