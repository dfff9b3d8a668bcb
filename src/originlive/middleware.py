"""ASGI middleware that guards every request before a handler sees it, and every response."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from originlive.errors import problem


class BodyLimitMiddleware:
    """Refuses bodies over the limit with 413, whether or not Content-Length is declared."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"")
        limit = (
            self.max_upload_bytes
            if content_type.startswith(b"multipart/form-data")
            else self.max_body_bytes
        )
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(scope, receive, send, limit)
            return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await self._refuse(scope, receive, send, limit)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem(
            413,
            "Payload too large",
            f"The request body is larger than {limit} bytes.",
            slug="payload-too-large",
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    """Raised inside the app when the streamed body passes the limit."""


class NoSniffMiddleware:
    """Adds ``X-Content-Type-Options: nosniff`` to every HTTP response.

    Browsers then take each response for the type it declares: an uploaded photo served as
    image/jpeg is never run as the HTML or script it might also be read as.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), _NOSNIFF]
            await send(message)

        await self.app(scope, receive, send_nosniff)


_NOSNIFF = (b"x-content-type-options", b"nosniff")
