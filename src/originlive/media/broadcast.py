"""The demo's anchor: an ffmpeg publishing a moving test picture, with the shop's name and a
clock, to each live session, so that ``make demo`` shows video without anyone running OBS.

It publishes over RTMP to this process's own ingest with the session's stream key, as an
encoder would, and is supervised like every ffmpeg here: restarted if it fails, while its
session is live.
"""

import asyncio
import contextlib
import logging
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from originlive.accounts.models import User
from originlive.catalog.models import Shop
from originlive.live.models import LiveSession, SessionStatus
from originlive.media.ffmpeg import Process

log = logging.getLogger(__name__)

# Fonts looked for, CJK first (shop names are Chinese); without any, the picture has no text.
FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)
CJK_FONTS = FONTS[:3]


def font() -> str | None:
    """A font file drawtext can use, CJK if there is one."""
    return next((f for f in FONTS if Path(f).exists()), None)


def test_picture(binary: str, url: str, *, title: str, folder: Path) -> list[str]:
    """ffmpeg sending a 640x360 test picture with a tone, in real time, a keyframe a second."""
    video = "testsrc2=size=640x360:rate=25"
    fontfile = font()
    if fontfile is not None:
        if fontfile not in CJK_FONTS:
            title = title.encode("ascii", "ignore").decode().strip() or "originlive demo"
        # From a file: a title needs no escaping there; the clock is expanded by drawtext.
        (folder / "title.txt").write_text(title)
        box = f"fontfile={fontfile}:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=8"
        video += f",drawtext={box}:textfile={folder / 'title.txt'}:fontsize=32:x=20:y=20"
        video += f",drawtext={box}:text=%{{localtime}}:fontsize=24:x=20:y=h-50"
    return [
        binary, "-hide_banner", "-loglevel", "error", "-re",
        "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=44100",
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "25",
        "-pix_fmt", "yuv420p", "-b:v", "600k", "-c:a", "aac", "-b:a", "64k", "-f", "flv", url,
    ]  # fmt: skip


class DemoBroadcast:
    """Publishes a test picture to every session live when it starts, while it stays live."""

    def __init__(
        self,
        *,
        binary: str,
        rtmp_url: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        folder: Path,
    ) -> None:
        self.binary = binary
        self.rtmp_url = rtmp_url
        self.sessionmaker = sessionmaker
        self.folder = folder
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start an encoder for each live session."""
        async with self.sessionmaker() as session:
            rows = await session.execute(
                # The shop's name, or the anchor's on a session of their own.
                select(LiveSession.id, func.coalesce(Shop.name, User.display_name))
                .outerjoin(Shop, Shop.id == LiveSession.shop_id)
                .join(User, User.id == LiveSession.anchor_id)
                .where(LiveSession.status == SessionStatus.LIVE)
            )
            lives = rows.all()
        for session_id, shop_name in lives:
            self._tasks.append(asyncio.create_task(self._run(session_id, shop_name)))

    async def _run(self, session_id: int, shop_name: str) -> None:
        folder = self.folder / f"demo-{session_id}"
        folder.mkdir(parents=True, exist_ok=True)
        while True:
            async with self.sessionmaker() as session:
                live = await session.get(LiveSession, session_id)
            if live is None or live.status != SessionStatus.LIVE:
                return
            url = f"{self.rtmp_url}/{live.stream_key}"
            title = f"{shop_name} · originlive"
            argv = test_picture(self.binary, url, title=title, folder=folder)
            process = Process(argv, name=f"demo encoder of session {session_id}")
            await process.start()
            try:
                await process.wait()
            finally:
                if process.running:
                    await process.stop(grace=3)
            await asyncio.sleep(2)  # then again, if the session is still live

    async def close(self) -> None:
        """Stop the encoders."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
