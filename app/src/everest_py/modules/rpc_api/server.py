# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The WebSocket transport of the JSON-RPC API: connections, the API.Hello rule, answers and notifications.

Each client has its own writer task and its requests run as tasks of their own, so a client that
stops reading, floods or breaks the protocol never delays the others. Notifications go to every
client that has said API.Hello (and is authenticated when authentication is required); a
notification not yet sent is replaced by a newer one of the same kind and EVSE, so a slow client
gets the latest state rather than a growing backlog. Answers are never dropped: a client with more
than SEND_QUEUE unread answers is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from everest_py.modules.rpc_api.jsonrpc import (
    BUSY,
    HELLO,
    Client,
    Decoded,
    Dispatcher,
    RpcError,
    encode,
    error_response,
    notification,
    round_floats,
)

SUBPROTOCOL = Subprotocol("EVerestRpcApi")
HELLO_TIMEOUT_S = 5.0  # a client must call API.Hello this soon after connecting
SEND_QUEUE = 256  # answers waiting for a client before it counts as stuck and is closed
MAX_IN_FLIGHT = 32  # requests of one client running at the same time
MAX_MESSAGE = 64 * 1024  # bytes of one received message

POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


def tls_context(certificate_file: str, private_key_file: str) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2 or newer) from PEM files; OSError/ssl.SSLError if they are unusable."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate_file, private_key_file)
    return context


def _select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """EVerest's subprotocol if the client asks for it; clients that ask for none are welcome too."""
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


@dataclass(eq=False)
class _Session:
    ws: ServerConnection
    client: Client
    answers: deque[str] = field(default_factory=deque)
    latest: dict[str, str] = field(default_factory=dict)  # unsent notifications by kind and EVSE
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    closing: bool = False


class RpcServer:
    """Serves one :class:`Dispatcher` on ``host:port`` (ws://, or wss:// with ``ssl_context``)."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        hello_timeout_s: float = HELLO_TIMEOUT_S,
        log: Logger | None = None,
    ) -> None:
        self.log: Logger = log or logging.getLogger("everest_py.module.rpc_api")
        self.dispatcher = dispatcher
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.hello_timeout_s = hello_timeout_s
        self._server: Server | None = None
        self._sessions: set[_Session] = set()

    @property
    def bound_port(self) -> int:
        """The port listened on (useful with port 0)."""
        assert self._server is not None
        port: int = next(iter(self._server.sockets)).getsockname()[1]
        return port

    @property
    def clients(self) -> int:
        return len(self._sessions)

    async def start(self) -> None:
        """Listen; OSError if the address cannot be bound."""
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            ssl=self.ssl_context,
            select_subprotocol=_select_subprotocol,
            max_size=MAX_MESSAGE,
            compression=None,
            logger=self.log,
        )
        scheme = "wss" if self.ssl_context is not None else "ws"
        self.log.info("JSON-RPC API on %s://%s:%d", scheme, self.host, self.bound_port)

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        await server.wait_closed()

    # -- sending --------------------------------------------------------------------------------------
    def _send(self, session: _Session, text: str) -> None:
        """Queue an answer."""
        if session.closing:
            return
        if len(session.answers) >= SEND_QUEUE:
            self.log.warning("client %s does not read its answers; closing it", session.client.id)
            self._close(session, TRY_AGAIN_LATER, "too many unread answers")
            return
        session.answers.append(text)
        session.wake.set()

    def notify(self, method: str, params: Any) -> None:
        """Send a notification to every client that said API.Hello (and is authenticated if required)."""
        text = encode(notification(method, round_floats(params, self.dispatcher.decimal_places)))
        key = f"{method}/{params.get('evse_index', '') if isinstance(params, dict) else ''}"
        need_auth = self.dispatcher.auth.required
        for session in list(self._sessions):
            client = session.client
            if session.closing or not client.hello_done or (need_auth and not client.authenticated):
                continue
            session.latest.pop(key, None)  # a newer one of the same kind replaces it, and goes last
            session.latest[key] = text
            session.wake.set()

    def _close(self, session: _Session, code: int, reason: str) -> None:
        if session.closing:
            return
        session.closing = True
        task = asyncio.get_running_loop().create_task(session.ws.close(code, reason))
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)

    async def _writer(self, session: _Session) -> None:
        """Send answers first, then the latest notifications, as fast as the client reads them."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                await session.wake.wait()
                session.wake.clear()
                while session.answers or session.latest:
                    if session.answers:
                        text = session.answers.popleft()
                    else:
                        text = session.latest.pop(next(iter(session.latest)))
                    await session.ws.send(text)

    async def _hello_deadline(self, session: _Session) -> None:
        await asyncio.sleep(self.hello_timeout_s)
        if not session.client.hello_done:
            self.log.info("client %s sent no API.Hello in time; closing it", session.client.id)
            self._close(session, POLICY_VIOLATION, "Disconnected due to timeout")

    # -- receiving --------------------------------------------------------------------------------------
    async def _handle(self, ws: ServerConnection) -> None:
        session = _Session(ws, Client(str(uuid.uuid4())))
        self._sessions.add(session)
        self.log.info("client %s connected from %s", session.client.id, ws.remote_address)
        loop = asyncio.get_running_loop()
        writer = loop.create_task(self._writer(session))
        deadline = loop.create_task(self._hello_deadline(session))
        try:
            async for message in ws:
                self._on_message(session, message)
        except ConnectionClosed:
            pass
        finally:
            self._sessions.discard(session)
            for task in (writer, deadline, *session.tasks):
                task.cancel()
            for task in (writer, deadline, *session.tasks):
                with contextlib.suppress(BaseException):
                    await task
            self.log.info("client %s disconnected", session.client.id)

    def _on_message(self, session: _Session, message: str | bytes) -> None:
        if session.closing:
            return
        decoded = self.dispatcher.decode(message)
        if decoded.answer is not None:
            self._send(session, encode(decoded.answer))
            return
        if not session.client.hello_done:
            if decoded.batch or decoded.requests[0].method != HELLO:
                self.log.info("client %s did not start with API.Hello; closing it", session.client.id)
                self._close(session, POLICY_VIOLATION, "Disconnected due to missing API.Hello request")
                return
            session.client.hello_done = True
        running = sum(1 for t in session.tasks if not t.done())
        if running >= MAX_IN_FLIGHT:
            ids = [r.id for r in decoded.requests if not r.notification]
            busy = [error_response(RpcError(BUSY, f"{MAX_IN_FLIGHT} requests are running"), i) for i in ids]
            if busy:
                self._send(session, encode(busy if decoded.batch else busy[0]))
            return
        task = asyncio.get_running_loop().create_task(self._answer(session, decoded))
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)

    async def _answer(self, session: _Session, decoded: Decoded) -> None:
        responses = [await self.dispatcher.execute(r, session.client) for r in decoded.requests]
        answers = decoded.errors + [r for r in responses if r is not None]
        if decoded.batch:
            if answers:
                self._send(session, encode(answers))
        elif answers:
            self._send(session, encode(answers[0]))
