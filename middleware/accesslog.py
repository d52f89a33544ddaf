"""``AccessLogMiddleware``: one privacy-preserving access-log line per HTTP request."""

from __future__ import annotations

import asyncio
import atexit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from consentgate.middleware.logfiles import AccessLog, Entry

#: Logged when no response was started and nothing was raised: the visitor went away
#: first (nginx's convention, so log analysers know it).
CLIENT_CLOSED = 499


class AccessLogMiddleware:
    """Pure ASGI middleware that hands every HTTP request to an ``AccessLog``.

    Place it inside ``ClientAddressMiddleware`` so ``scope["client"]`` is already masked
    (``ConsentMiddleware`` does both when ``[access_log] directory`` is set). It records
    what the visitor received: the final status and the body bytes actually sent. The
    log's thread starts with the ASGI lifespan (or the first request if the server runs
    no lifespan) and is flushed and stopped at lifespan shutdown and at exit.
    """

    def __init__(self, app: ASGIApp, *, log: AccessLog) -> None:
        self.app = app
        self.log = log
        self._pid = -1  # the process whose writer thread this middleware has started
        atexit.register(log.close)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            # Start now, not when the app asks for the startup message: an app that refuses
            # the lifespan (Django's handler raises) must still get its start-up sweep and
            # the periodic sweeps without waiting for traffic.
            self.log.start()
            self._pid = self.log.pid
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        if kind != "http":
            await self.app(scope, receive, send)
            return
        log = self.log
        if log.pid != self._pid:
            # No lifespan from this server, or a worker forked after the log started:
            # start this process's writer with its first request.
            log.start()
            self._pid = log.pid
        started = log.clock()
        status = 0
        size = 0
        start: Message | None = None

        async def logged_send(message: Message) -> None:
            nonlocal status, size, start
            kind = message["type"]
            if kind == "http.response.body":
                size += len(message.get("body", b""))
            elif kind == "http.response.start":
                status = message["status"]
                start = message
            elif kind == "http.response.pathsend" and start is not None:
                size += _content_length(start)
            await send(message)

        try:
            await self.app(scope, receive, logged_send)
        except asyncio.CancelledError:
            if status == 0:
                status = CLIENT_CLOSED  # servers cancel the app when the visitor goes away
            raise
        except BaseException:
            if status == 0:
                status = 500  # what the server answers for an exception before a response
            raise
        finally:
            if status == 0:
                status = CLIENT_CLOSED
            client = scope.get("client")
            # Only bytes and numbers in the entry: the garbage collector stops tracking such
            # tuples, whereas entries holding the header list would be scanned while queued.
            headers = dict(scope["headers"])
            log.add(
                Entry(
                    started,
                    client[0] if client else None,
                    scope["method"],
                    # Some servers put the query into raw_path too; it is cut off in the writer.
                    scope.get("raw_path") or scope["path"].encode("utf-8"),
                    scope.get("query_string", b""),
                    scope.get("http_version", "1.1"),
                    status,
                    size,
                    headers.get(b"referer"),
                    headers.get(b"user-agent"),
                )
            )

    def _lifespan_receive(self, receive: Receive) -> Receive:
        log = self.log

        async def lifespan_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                log.start()
            elif message["type"] == "lifespan.shutdown":
                log.close()
            return message

        return lifespan_receive


def _content_length(start: Message) -> int:
    """Return the ``Content-Length`` of a response whose body the server sends by path."""
    for name, value in start.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
