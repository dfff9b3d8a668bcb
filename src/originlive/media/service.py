"""The rules of a session's stream: who may publish, when a dropped stream ends its session,
and its recording."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from originlive.db import utcnow
from originlive.live import service as live_service
from originlive.live.models import LiveSession, SessionStatus


async def publishable(session: AsyncSession, *, stream_key: str) -> LiveSession | str:
    """The session this stream key publishes to, or why it may not."""
    if not stream_key:
        return "no stream key"
    live = await session.scalar(select(LiveSession).where(LiveSession.stream_key == stream_key))
    if live is None:
        return "unknown stream key"
    if live.status == SessionStatus.ENDED:
        return "the session has ended"
    if not await live_service.is_public(session, live=live):
        return "the shop is not approved yet"
    return live


async def connected(session: AsyncSession, *, live: LiveSession) -> None:
    """The encoder is publishing (again): no grace period runs."""
    live.stream_connected_at = utcnow()
    live.stream_dropped_at = None
    await session.flush()


async def dropped(session: AsyncSession, *, session_id: int) -> None:
    """The encoder has gone: if the session is live, its grace period starts."""
    await session.execute(
        update(LiveSession)
        .where(
            LiveSession.id == session_id,
            LiveSession.status == SessionStatus.LIVE,
            LiveSession.stream_dropped_at.is_(None),
        )
        .values(stream_dropped_at=utcnow())
    )


async def lost_streams(session: AsyncSession) -> int:
    """After a restart: streams this process was taking are gone; their grace starts now."""
    result = await session.execute(
        update(LiveSession)
        .where(
            LiveSession.status == SessionStatus.LIVE,
            LiveSession.stream_connected_at.is_not(None),
            LiveSession.stream_dropped_at.is_(None),
        )
        .values(stream_dropped_at=utcnow())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def overdue(session: AsyncSession, *, dropped_before: datetime) -> Sequence[int]:
    """Live sessions whose encoder has been away since before ``dropped_before``."""
    rows = await session.scalars(
        select(LiveSession.id).where(
            LiveSession.status == SessionStatus.LIVE,
            LiveSession.stream_dropped_at <= dropped_before,
        )
    )
    return rows.all()


async def claim_overdue(
    session: AsyncSession, *, session_id: int, dropped_before: datetime
) -> LiveSession | None:
    """The session to end, if no other process has ended it or its encoder come back."""
    claimed = await session.execute(
        update(LiveSession)
        .where(
            LiveSession.id == session_id,
            LiveSession.status == SessionStatus.LIVE,
            LiveSession.stream_dropped_at <= dropped_before,
        )
        .values(stream_dropped_at=None)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        return None
    return await session.get(LiveSession, session_id, populate_existing=True)


async def unrecorded(session: AsyncSession) -> Sequence[int]:
    """Ended sessions that streamed and whose recording is not finished yet."""
    rows = await session.scalars(
        select(LiveSession.id).where(
            LiveSession.status == SessionStatus.ENDED,
            LiveSession.stream_connected_at.is_not(None),
            LiveSession.recording_ms.is_(None),
        )
    )
    return rows.all()


async def recorded(session: AsyncSession, *, session_id: int, seconds: float) -> None:
    """The recording is ready to replay (0 seconds: nothing was recorded)."""
    await session.execute(
        update(LiveSession)
        .where(LiveSession.id == session_id)
        .values(recording_ms=round(seconds * 1000))
    )


async def streams_of(
    session: AsyncSession, session_ids: Sequence[int]
) -> dict[int, tuple[str, str]]:
    """Status and stream key of these sessions, by id."""
    rows = await session.execute(
        select(LiveSession.id, LiveSession.status, LiveSession.stream_key).where(
            LiveSession.id.in_(session_ids)
        )
    )
    return {row.id: (row.status, row.stream_key) for row in rows}
