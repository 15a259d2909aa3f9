# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""One MQTT connection on an asyncio loop (paho-mqtt 2.x driven by the loop's reader/writer).

No threads: paho's socket is watched with ``add_reader``/``add_writer``, so every callback runs on
the event loop, in order.  Subscriptions are kept here and renewed after every reconnect; several
local handlers may share one MQTT subscription.

Over MQTT 5 every subscription is made with *No Local*: the broker does not echo our own frames
back, and a frame we publish is handed to our own matching handlers directly (on the next loop
turn, like a delivery).  Everything still goes to the broker, so other processes and
``mosquitto_sub`` see all traffic, but modules sharing a process talk without a broker round trip
and keep talking while the broker restarts.  MQTT 3.1.1 has no *No Local*; there the broker's
echo is the delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from everest_py.errors import BusError

log = logging.getLogger(__name__)
frames = logging.getLogger("everest_py.frames")

Handler = Callable[[str, bytes], None]
KEEPALIVE_S = 20


@dataclass(frozen=True)
class BrokerEndpoint:
    """Where the broker listens: a unix socket, or host and port."""

    socket_path: str | None = None
    host: str = "localhost"
    port: int = 1883

    def __str__(self) -> str:
        return f"unix:{self.socket_path}" if self.socket_path else f"{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """EVerest's environment for a Python module process."""
        if self.socket_path:
            return {"EV_MQTT_BROKER_SOCKET_PATH": self.socket_path}
        return {"EV_MQTT_BROKER_HOST": self.host, "EV_MQTT_BROKER_PORT": str(self.port)}

    @classmethod
    def from_env(cls, env: dict[str, str]) -> BrokerEndpoint:
        if env.get("EV_MQTT_BROKER_SOCKET_PATH"):
            return cls(socket_path=env["EV_MQTT_BROKER_SOCKET_PATH"])
        return cls(host=env.get("EV_MQTT_BROKER_HOST", "localhost"), port=int(env.get("EV_MQTT_BROKER_PORT", "1883")))


class _BufferedSocket:
    """Buffers both directions of paho's socket.

    paho reads a packet with several tiny ``recv`` calls and only one packet per ``loop_read``,
    and writes every packet with a ``send`` of its own.  Reads here take what has arrived in one
    call; writes are collected and leave in one ``send`` per event-loop turn (``flush``).
    """

    __slots__ = ("_buf", "_out", "_pos", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock: socket.socket = sock
        self._buf = b""
        self._pos = 0
        self._out: list[bytes] = []

    def send(self, data: bytes | bytearray) -> int:
        self._out.append(bytes(data))
        return len(data)

    def flush(self) -> bool:
        """Send what is collected; True if everything left (False: wait for writability)."""
        if not self._out:
            return True
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self._out.append(data[sent:])
            return False
        return True

    def has_output(self) -> bool:
        return bool(self._out)

    def close(self) -> None:
        """paho closes right after queuing DISCONNECT: send what is collected first."""
        deadline = time.monotonic() + 1.0
        try:
            while not self.flush() and time.monotonic() < deadline:
                select.select([], [self._sock], [], 0.05)
        except OSError:
            pass
        self._sock.close()

    def recv(self, n: int) -> bytes:
        if self._pos >= len(self._buf):
            data = self._sock.recv(65536)  # BlockingIOError when empty: paho's "again"
            if not data:
                return data
            self._buf, self._pos = data, 0
        chunk = self._buf[self._pos : self._pos + n]
        self._pos += len(chunk)
        return chunk

    def pending_bytes(self) -> int:
        return len(self._buf) - self._pos

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def filter_regex(topic_filter: str) -> re.Pattern[str]:
    """A compiled matcher for an MQTT topic filter with ``+`` and ``#`` (MQTT 3.1.1 §4.7)."""
    parts: list[str] = []
    levels = topic_filter.split("/")
    for level in levels:
        if level == "#":
            # "a/#" also matches "a" itself
            return re.compile("^" + "/".join(parts) + ("(?:/.*)?$" if parts else ".*$"))
        parts.append("[^/]*" if level == "+" else re.escape(level))
    return re.compile("^" + "/".join(parts) + "$")


def encode_publish_qos0(topic: str, payload: bytes, retain: bool, v5: bool) -> bytes:
    """A complete QoS 0 PUBLISH packet (MQTT 3.1.1 §3.3, MQTT 5 §3.3 with empty properties)."""
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name + (b"\x00" if v5 else b"")
    remaining = len(body) + len(payload)
    header = bytearray((0x31 if retain else 0x30,))
    while True:
        byte = remaining & 0x7F
        remaining >>= 7
        header.append(byte | 0x80 if remaining else byte)
        if not remaining:
            break
    return bytes(header) + body + payload


def filters_overlap(a: str, b: str) -> bool:
    """True if some topic matches both MQTT filters."""
    la, lb = a.split("/"), b.split("/")
    for x, y in zip(la, lb, strict=False):
        if x == "#" or y == "#":
            return True
        if x != y and "+" not in (x, y):
            return False
    rest = la[len(lb) :] or lb[len(la) :]
    return not rest or rest == ["#"]


def unix_listening(path: str) -> bool:
    """True if something accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError:
            return False
    return True


PROTOCOLS = {"5": mqtt.MQTTv5, "3.1.1": mqtt.MQTTv311}


class Bus:
    """An MQTT client bound to the running asyncio loop."""

    def __init__(
        self,
        endpoint: BrokerEndpoint,
        *,
        protocol: str = "5",
        client_id: str = "",
        qos: int = 0,
        on_handler_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise BusError(f"MQTT protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
        if qos not in (0, 1, 2):
            raise BusError(f"MQTT QoS must be 0, 1 or 2, not {qos!r}")
        self.endpoint = endpoint
        self.protocol = protocol
        self.qos = qos
        self._local = protocol == "5"
        self._loop = asyncio.get_running_loop()
        kwargs: dict[str, Any] = {}
        if protocol != "5":
            kwargs["clean_session"] = True
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=PROTOCOLS[protocol],
            transport="unix" if endpoint.socket_path else "tcp",
            reconnect_on_failure=False,
            **kwargs,
        )
        c = self._client
        c.max_inflight_messages_set(0)  # 0 = no limit; the broker's queue is the limit
        c.max_queued_messages_set(0)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.connect_timeout = 1.0
        c.on_message = self._on_message
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write
        self._exact: dict[str, list[Handler]] = {}
        self._wild: dict[str, list[Handler]] = {}
        self._wild_re: dict[str, re.Pattern[str]] = {}
        self._qos: dict[str, int] = {}
        # Over MQTT 5 overlapping subscriptions get one copy per subscription. Filters that overlap
        # another carry a subscription identifier, so each copy goes to its own filter's handlers.
        # Only those: paho parses the identifier property of every frame that has one (~0.1 ms).
        self._sub_ids: dict[str, int] = {}
        self._by_sub_id: dict[int, str] = {}
        self._next_sub_id = 1
        self._id_pending: set[str] = set()  # got an id; until the SUBACK frames may still lack it
        self._suback_wait: dict[int, str] = {}
        self._connected = asyncio.Event()
        self._closing = False
        self._misc: asyncio.Task[None] | None = None
        self._reconnect: asyncio.Task[None] | None = None
        self._on_handler_error = on_handler_error
        self.connect_count = 0
        self._buffered: _BufferedSocket | None = None
        self._flush_soon = False

    # -- connection -------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _open(self) -> None:
        ep = self.endpoint
        host, port = (ep.socket_path, 1883) if ep.socket_path else (ep.host, ep.port)
        if self.protocol == "5":
            self._client.connect(host, port, keepalive=KEEPALIVE_S, clean_start=True)
        else:
            self._client.connect(host, port, keepalive=KEEPALIVE_S)

    async def _reachable(self) -> str | None:
        """None if the broker accepts connections, else why not; never blocks the loop.

        paho connects with a blocking socket call (and leaks the socket of a failed unix
        connect), so every attempt is probed here first.
        """
        ep = self.endpoint
        if ep.socket_path:
            return None if unix_listening(ep.socket_path) else "no listener on the socket"
        try:
            async with asyncio.timeout(1.0):
                _, writer = await asyncio.open_connection(ep.host, ep.port)
        except (OSError, TimeoutError) as err:
            return getattr(err, "strerror", None) or str(err) or type(err).__name__
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None

    async def connect(self, timeout_s: float = 5.0) -> None:
        """Connect, retrying until ``timeout_s``; BusError names the broker if that fails."""
        deadline = self._loop.time() + timeout_s
        last: str = "no answer"
        while True:
            try:
                why = await self._reachable()
                if why is not None:
                    raise OSError(why)
                self._open()
                await asyncio.wait_for(self._connected.wait(), max(0.05, deadline - self._loop.time()))
                break
            except (OSError, TimeoutError) as err:
                last = getattr(err, "strerror", None) or str(err) or type(err).__name__
            if self._loop.time() >= deadline:
                raise BusError(f"no MQTT broker at {self.endpoint} ({last})")
            await asyncio.sleep(0.1)
        if self._misc is None:
            self._misc = self._loop.create_task(self._housekeeping(), name="mqtt-misc")

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def close(self) -> None:
        self._closing = True
        for task in (self._misc, self._reconnect):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.connected:
            # Queued frames (e.g. cleared retained topics) first; DISCONNECT leaves on close.
            await self._drain(0.5)
            self._client.disconnect()
        self._connected.clear()

    def _output_pending(self) -> bool:
        return self._client.want_write() or (self._buffered is not None and self._buffered.has_output())

    async def _drain(self, limit_s: float) -> None:
        deadline = self._loop.time() + limit_s
        while self._output_pending() and self._loop.time() < deadline:
            self._write()
            if self._output_pending():
                await asyncio.sleep(0.002)

    async def drain(self) -> None:
        """Wait (up to a second) until everything queued has been written to the socket."""
        await self._drain(1.0)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._client.loop_misc()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            log.error("broker %s refused the connection: %s", self.endpoint, rc)
            return
        self.connect_count += 1
        if self.connect_count > 1:
            log.warning("reconnected to the MQTT broker at %s", self.endpoint)
        self._id_pending.clear()  # a clean session has no old subscriptions to race with
        self._suback_wait.clear()
        for topic, qos in self._qos.items():
            self._send_subscribe(topic, qos)
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if self._closing:
            return
        if was:
            log.warning("lost the MQTT broker at %s (%s); reconnecting", self.endpoint, rc)
        if self.connect_count == 0:
            return  # the first connect() retries by itself
        if self._reconnect is None or self._reconnect.done():
            self._reconnect = self._loop.create_task(self._reconnect_loop(), name="mqtt-reconnect")

    async def _reconnect_loop(self) -> None:
        delay = 0.05
        while not self._closing and not self.connected:
            await asyncio.sleep(delay)
            if await self._reachable() is not None:
                delay = min(delay * 2, 1.0)
                continue
            try:
                self._client.reconnect()
                await asyncio.wait_for(self._connected.wait(), 2.0)
            except (OSError, TimeoutError):
                delay = min(delay * 2, 1.0)

    # -- socket plumbing ---------------------------------------------------------------------
    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # QoS 1/2 acks otherwise wait for delayed ACKs: ~44-88 ms per round trip.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if getattr(client, "_sock", None) is sock:
            # paho keeps its socket in _sock; handing it our buffered wrapper is the one place
            # where we rely on paho's internals (pinned to paho-mqtt 2.x).
            self._buffered = _BufferedSocket(sock)
            client._sock = self._buffered
        self._loop.add_reader(sock, self._read)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._loop.add_writer(sock, self._write)

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if self._buffered is not None and self._buffered.has_output():
            return  # keep waiting for writability until our own buffer is out
        self._loop.remove_writer(sock)

    def _read(self) -> None:
        client = self._client
        buffered = self._buffered
        while True:
            if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
            if buffered is None or buffered.pending_bytes() <= 0 or not self._is_current(buffered):
                break
        if self._flush_soon:
            self._flush()  # answers written by handlers leave now, not one loop turn later

    def _write(self) -> None:
        self._client.loop_write()
        buffered = self._buffered
        if buffered is not None:
            try:
                done = buffered.flush()
            except OSError:
                return  # paho notices the broken socket on its next read
            fd = buffered.fileno()
            if done and fd >= 0 and not self._client.want_write():
                self._loop.remove_writer(fd)

    # -- messages -------------------------------------------------------------------------
    def subscribe(self, topic: str, handler: Handler, qos: int | None = None) -> Callable[[], None]:
        """Route messages matching ``topic`` to ``handler``; returns a function that undoes it."""
        if qos is None:
            qos = self.qos
        wild = "+" in topic or "#" in topic
        table = self._wild if wild else self._exact
        if wild and topic not in self._wild_re:
            self._wild_re[topic] = filter_regex(topic)
        handlers = table.setdefault(topic, [])
        handlers.append(handler)
        if len(handlers) == 1 or qos > self._qos.get(topic, -1):
            self._qos[topic] = max(qos, self._qos.get(topic, 0))
            if self.protocol == "5" and topic not in self._sub_ids:
                others = [f for f in self._qos if f != topic and filters_overlap(f, topic)]
                if others:
                    for f in (topic, *others):
                        if f not in self._sub_ids:
                            self._sub_ids[f] = self._next_sub_id
                            self._by_sub_id[self._next_sub_id] = f
                            self._next_sub_id += 1
                            if f != topic and self.connected:
                                # frames of the old subscription still come without an id
                                self._id_pending.add(f)
                                self._send_subscribe(f, self._qos[f])  # same filter: replaced
            if self.connected:
                self._send_subscribe(topic, self._qos[topic])

        def undo() -> None:
            hs = table.get(topic)
            if hs and handler in hs:
                hs.remove(handler)
                if not hs:
                    del table[topic]
                    self._wild_re.pop(topic, None)
                    self._qos.pop(topic, None)
                    self._by_sub_id.pop(self._sub_ids.pop(topic, 0), None)
                    if self.connected:
                        self._client.unsubscribe(topic)

        return undo

    def _send_subscribe(self, topic: str, qos: int) -> None:
        if self.protocol == "5":
            options = SubscribeOptions(qos=qos, noLocal=True)
            sub_id = self._sub_ids.get(topic)
            if sub_id is None:
                self._client.subscribe(topic, options=options)
            else:
                props = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
                props.SubscriptionIdentifier = sub_id
                _, mid = self._client.subscribe(topic, options=options, properties=props)
                if topic in self._id_pending and mid is not None:
                    self._suback_wait[mid] = topic
        else:
            self._client.subscribe(topic, qos)

    def publish(self, topic: str, payload: bytes | str, qos: int | None = None, retain: bool = False) -> None:
        if frames.isEnabledFor(logging.DEBUG):
            frames.debug("> %s %s", topic, payload if isinstance(payload, str) else payload.decode(errors="replace"))
        data = payload.encode() if isinstance(payload, str) else payload
        qos = self.qos if qos is None else qos
        buffered = self._buffered
        if qos == 0 and buffered is not None and self.connected and self._is_current(buffered):
            # QoS 0 needs no state in paho: encode it ourselves, behind whatever paho has queued.
            if "+" in topic or "#" in topic or not topic:
                raise ValueError(f"cannot publish on topic {topic!r}")
            if self._client.want_write():
                self._client.loop_write()
            buffered.send(encode_publish_qos0(topic, data, retain, self.protocol == "5"))
            if not self._flush_soon:
                self._flush_soon = True
                self._loop.call_soon(self._flush)
        else:
            info = self._client.publish(topic, data, qos=qos, retain=retain)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                log.warning("publish on %s failed: %s", topic, mqtt.error_string(info.rc))
        if self._local:
            handlers = self._matching(topic)
            if handlers:
                self._loop.call_soon(self._deliver, topic, data, handlers)

    def _is_current(self, buffered: _BufferedSocket) -> bool:
        """True while paho still uses this buffered socket (not after a reconnect)."""
        current: object = self._client.socket()
        return current is buffered

    def _flush(self) -> None:
        self._flush_soon = False
        buffered = self._buffered
        if buffered is None or not self._is_current(buffered):
            return
        try:
            done = buffered.flush()
        except OSError:
            return  # paho notices the broken socket on its next read
        if not done and buffered.fileno() >= 0:
            self._loop.add_writer(buffered.fileno(), self._write)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, codes: Any, props: Any = None) -> None:
        topic = self._suback_wait.pop(mid, None)
        if topic is not None:
            self._id_pending.discard(topic)

    def _matching(self, topic: str, without_id: bool = False) -> list[Handler]:
        ids: dict[str, int] = {}
        if without_id:
            pending = self._id_pending
            ids = {t: i for t, i in self._sub_ids.items() if t not in pending} if pending else self._sub_ids
        found = [] if topic in ids else list(self._exact.get(topic, ()))
        for pattern, hs in self._wild.items():
            if pattern not in ids and self._wild_re[pattern].match(topic):
                found.extend(hs)
        return found

    def _deliver(self, topic: str, payload: bytes, handlers: list[Handler]) -> None:
        for h in handlers:
            self._call(h, topic, payload)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic, payload = msg.topic, bytes(msg.payload)
        if frames.isEnabledFor(logging.DEBUG):
            frames.debug("< %s %s", topic, payload.decode(errors="replace"))
        sub_ids = getattr(msg.properties, "SubscriptionIdentifier", None) if msg.properties else None
        if sub_ids:
            for sid in sub_ids:
                pattern = self._by_sub_id.get(sid)
                if pattern is not None:
                    table = self._wild if pattern in self._wild else self._exact
                    for h in tuple(table.get(pattern, ())):
                        self._call(h, topic, payload)
            return
        if self.protocol == "5":
            # No identifier: the one filter without an identifier that matches.
            for h in self._matching(topic, without_id=True):
                self._call(h, topic, payload)
            return
        # MQTT 3.1.1: mosquitto sends one copy however many of our filters match.
        for h in self._matching(topic):
            self._call(h, topic, payload)

    def _call(self, handler: Handler, topic: str, payload: bytes) -> None:
        try:
            handler(topic, payload)
        except Exception as err:
            if self._on_handler_error is None:
                log.exception("handler for %s failed", topic)
            else:
                self._on_handler_error(err)
