# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""One MQTT connection on an asyncio loop (paho-mqtt 2.x driven by the loop's reader/writer).

No threads: paho's socket is watched with ``add_reader``/``add_writer``, so every callback runs on
the event loop, in order.  Subscriptions are kept here and renewed after every reconnect; several
local handlers may share one MQTT subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

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


def _unix_listening(path: str) -> bool:
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
        on_handler_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise BusError(f"MQTT protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
        self.endpoint = endpoint
        self.protocol = protocol
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
        c.on_message = self._on_message
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write
        self._exact: dict[str, list[Handler]] = {}
        self._wild: dict[str, list[Handler]] = {}
        self._qos: dict[str, int] = {}
        # Overlapping subscriptions get one copy per subscription. MQTT 5 tags each copy with
        # its subscription identifier; MQTT 3.1.1 cannot, so copies after the first are skipped.
        self._sub_ids: dict[str, int] = {}
        self._by_sub_id: dict[int, str] = {}
        self._next_sub_id = 1
        self._skip: dict[tuple[str, bytes], int] = {}
        self._connected = asyncio.Event()
        self._closing = False
        self._misc: asyncio.Task[None] | None = None
        self._reconnect: asyncio.Task[None] | None = None
        self._on_handler_error = on_handler_error
        self.connect_count = 0

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

    async def connect(self, timeout_s: float = 5.0) -> None:
        """Connect, retrying until ``timeout_s``; BusError names the broker if that fails."""
        deadline = self._loop.time() + timeout_s
        last: str = "no answer"
        while True:
            try:
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
            # Let queued frames (e.g. cleared retained topics) reach the broker first.
            for _ in range(50):
                if not self._client.want_write():
                    break
                await asyncio.sleep(0.01)
            self._client.disconnect()
        self._connected.clear()

    async def drain(self) -> None:
        """Wait until paho has written everything it has queued."""
        for _ in range(500):
            if not self._client.want_write():
                return
            await asyncio.sleep(0.002)

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
        self._skip.clear()
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
        if self._reconnect is None or self._reconnect.done():
            self._reconnect = self._loop.create_task(self._reconnect_loop(), name="mqtt-reconnect")

    async def _reconnect_loop(self) -> None:
        delay = 0.05
        while not self._closing and not self.connected:
            await asyncio.sleep(delay)
            if self.endpoint.socket_path and not _unix_listening(self.endpoint.socket_path):
                # paho leaks the socket of a failed unix connect; probe with our own first
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
        self._loop.add_reader(sock, self._read)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._loop.add_writer(sock, self._write)

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._loop.remove_writer(sock)

    def _read(self) -> None:
        self._client.loop_read(100)

    def _write(self) -> None:
        self._client.loop_write()

    # -- messages -------------------------------------------------------------------------
    def subscribe(self, topic: str, handler: Handler, qos: int = 2) -> Callable[[], None]:
        """Route messages matching ``topic`` to ``handler``; returns a function that undoes it."""
        table = self._wild if ("+" in topic or "#" in topic) else self._exact
        handlers = table.setdefault(topic, [])
        handlers.append(handler)
        if len(handlers) == 1 or qos > self._qos.get(topic, -1):
            self._qos[topic] = max(qos, self._qos.get(topic, 0))
            if topic not in self._sub_ids:
                self._sub_ids[topic] = self._next_sub_id
                self._by_sub_id[self._next_sub_id] = topic
                self._next_sub_id += 1
            if self.connected:
                self._send_subscribe(topic, self._qos[topic])

        def undo() -> None:
            hs = table.get(topic)
            if hs and handler in hs:
                hs.remove(handler)
                if not hs:
                    del table[topic]
                    self._qos.pop(topic, None)
                    self._by_sub_id.pop(self._sub_ids.pop(topic, 0), None)
                    if self.connected:
                        self._client.unsubscribe(topic)

        return undo

    def _send_subscribe(self, topic: str, qos: int) -> None:
        if self.protocol == "5":
            props = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
            props.SubscriptionIdentifier = self._sub_ids[topic]
            self._client.subscribe(topic, qos, properties=props)
        else:
            self._client.subscribe(topic, qos)

    def publish(self, topic: str, payload: bytes | str, qos: int = 2, retain: bool = False) -> None:
        if frames.isEnabledFor(logging.DEBUG):
            frames.debug("> %s %s", topic, payload if isinstance(payload, str) else payload.decode(errors="replace"))
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            log.warning("publish on %s failed: %s", topic, mqtt.error_string(info.rc))

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
        key = (topic, payload)
        skip = self._skip.get(key)
        if skip:
            if skip == 1:
                del self._skip[key]
            else:
                self._skip[key] = skip - 1
            return
        matched = 0
        handlers = self._exact.get(topic)
        if handlers:
            matched += 1
            for h in tuple(handlers):
                self._call(h, topic, payload)
        for pattern, hs in tuple(self._wild.items()):
            if mqtt.topic_matches_sub(pattern, topic):
                matched += 1
                for h in tuple(hs):
                    self._call(h, topic, payload)
        if matched > 1:
            self._skip[key] = matched - 1

    def _call(self, handler: Handler, topic: str, payload: bytes) -> None:
        try:
            handler(topic, payload)
        except Exception as err:
            if self._on_handler_error is None:
                log.exception("handler for %s failed", topic)
            else:
                self._on_handler_error(err)
