"""Typed settings, read once from ``ORIGINLIVE_*`` environment variables."""

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the platform; unset database and Redis URLs mean the embedded default."""

    model_config = SettingsConfigDict(env_prefix="ORIGINLIVE_", extra="ignore")

    data_dir: Path = Field(
        default=Path("var"), description="Where the SQLite file, media and the secret live."
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset means SQLite in data_dir."
    )
    redis_url: str | None = Field(default=None, description="Redis URL; unset means in-process.")
    secret_key: str | None = Field(
        default=None, description="Signs CSRF tokens; unset means one kept in data_dir."
    )
    public_url: str | None = Field(
        default=None,
        description="The platform's address as others reach it (the sandbox gateway's webhooks "
        "go there); unset means http://HOST:PORT.",
    )
    sandbox_courier: bool = Field(
        default=True,
        description="Deliver the sandbox gateway's and the sandbox carrier's webhooks from this "
        "process (one is enough).",
    )
    sandbox_carrier_secret: str | None = Field(
        default=None,
        description="Signs the sandbox carrier's webhooks; unset means one derived from the "
        "platform's secret (enough for development and a single deployment).",
    )
    sandbox_carrier_step_seconds: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        description="Time between the sandbox carrier's events for a parcel (picked up, in "
        "transit, ..., delivered).",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    auto_approve_shops: bool = Field(default=False, description="Approve new shops at once.")
    api_token_ttl_seconds: int = 24 * 3600
    session_ttl_seconds: int = 14 * 24 * 3600
    cookie_secure: bool = Field(
        default=False, description="Send the session cookie over HTTPS only."
    )
    max_body_bytes: int = Field(
        default=1 << 20, description="Largest request body, uploads excepted."
    )
    max_upload_bytes: int = Field(default=10 << 20, description="Largest uploaded image.")
    login_attempts: int = Field(default=10, description="Failed logins allowed per window.")
    login_window_seconds: int = 300
    order_ttl_seconds: int = Field(
        default=15 * 60, ge=10, description="How long an unpaid order holds its units."
    )
    page_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=3600,
        description="How long a shared page (room, product, home) is kept at most; pages are "
        "forgotten at once when what they show changes in this process; 0 turns it off.",
    )
    sweep_interval_seconds: float = Field(
        default=5.0, gt=0, description="How often unpaid orders expire and offers end."
    )
    platform_fee_bp: int = Field(
        default=500,
        ge=0,
        le=10_000,
        description="The platform's fee on an order's items, in basis points (500 = 5 %).",
    )
    station_fee_fen: int = Field(
        default=100,
        ge=0,
        le=100_000,
        description="Paid per parcel, out of the shop's part, to the delivery nodes that "
        "handled it.",
    )
    coop_share_bp: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="A co-operative's share of its members' items, in basis points; shops "
        "name their co-operative (and may set their own share) in their split rule.",
    )
    auto_confirm_days: float = Field(
        default=7.0,
        ge=0,
        le=60,
        description="Receipt is confirmed for a buyer who has not, this long after delivery.",
    )
    after_sales_days: float = Field(
        default=7.0,
        ge=0,
        le=60,
        description="How long after receipt a buyer may still ask for a refund; the order's "
        "money becomes available once it has passed.",
    )
    settle_interval_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How often captures, refunds and releases are posted to the ledger; 0: "
        "only by `originlive ledger settle`.",
    )
    payout_interval_days: float = Field(
        default=7.0,
        ge=0,
        le=366,
        description="How often available balances are paid out (each account at most once a "
        "period); 0: only by `originlive ledger payouts`.",
    )
    payout_minimum_fen: int = Field(
        default=10_000,
        ge=1,
        le=10**12,
        description="The smallest available balance a payout run pays, in fen.",
    )
    reconcile_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="With Redis: how often the stock gate's figures are set from the database.",
    )
    comment_limit: int = Field(
        default=5, ge=1, description="Comments one buyer may post in a room per window."
    )
    comment_window_seconds: int = Field(default=10, ge=1)
    banned_words_file: Path | None = Field(
        default=None,
        description="Words no comment may hold, one a line; unset means the list shipped.",
    )
    rtmp_port: int = Field(default=1935, description="Where anchors' encoders publish (RTMP).")
    rtmp_host: str | None = Field(
        default=None, description="The address the RTMP ingest listens on; unset means HOST."
    )
    media_mode: Literal["embedded", "external"] = Field(
        default="embedded",
        description="embedded: this process takes RTMP and runs ffmpeg; external: nginx-rtmp or "
        "SRS does, calling /api/v1/media/hooks/*.",
    )
    ffmpeg: Path | None = Field(
        default=None, description="The ffmpeg to run; unset means the one the wheel ships."
    )
    hls_segment_seconds: float = Field(
        default=1.0, ge=0.5, le=6, description="Target length of an HLS segment."
    )
    hls_live_segments: int = Field(
        default=6, ge=3, le=30, description="Segments in the live playlist's window."
    )
    renditions: bool = Field(
        default=False,
        description="Transcode each stream into 720p, 360p and audio-only (costs CPU).",
    )
    reconnect_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a session stays live after its encoder drops, for it to return.",
    )
    demo_broadcast: bool = Field(
        default=False,
        description="Publish a test picture to each live session at start (set by `demo`).",
    )
    media_hook_secret: str | None = Field(
        default=None,
        description="Asked of nginx-rtmp's or SRS's calls to /api/v1/media/hooks/* (?secret=).",
    )
    media_control_url: str | None = Field(
        default=None,
        description="External mode: nginx-rtmp's control address (rtmp_control), e.g. "
        "http://127.0.0.1:8081/control; an ended session's or rotated key's encoder is put "
        "out through it. Unset: it streams on until it stops by itself.",
    )
    gc_tuning: bool = Field(
        default=True,
        description="Freeze start-up objects and collect cycles less often (lower tail latency).",
    )
    pdf_font: Path | None = Field(
        default=None,
        description="A TrueType font with Chinese for PDF manifests; unset means the first of "
        "WenQuanYi Micro Hei, Zen Hei, Droid Sans Fallback and AR PL UMing found.",
    )
    db_echo: bool = False
    log_level: str = "info"

    @property
    def resolved_database_url(self) -> str:
        """The URL the engine uses."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'originlive.db').resolve()}"

    @property
    def resolved_public_url(self) -> str:
        """Where this platform is reached, without a trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def ingest_url(self) -> str:
        """The RTMP address anchors publish to, with their stream key as the stream's name."""
        host = urlsplit(self.resolved_public_url).hostname or self.host
        return f"rtmp://{host}:{self.rtmp_port}/live"

    @property
    def hls_dir(self) -> Path:
        """Where live streams are cut into HLS and kept as recordings, a folder a session."""
        return self.data_dir / "hls"

    @property
    def media_dir(self) -> Path:
        """Where uploaded images are stored by the local storage backend."""
        return self.data_dir / "media"

    @property
    def resolved_secret_key(self) -> str:
        """The configured secret, or one generated once and kept beside the data."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings."""
    return Settings()
