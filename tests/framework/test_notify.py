# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The manager's systemd notifications: datagrams on NOTIFY_SOCKET, never blocking the event loop."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from everest_py.framework import manager


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_a_notification_arrives_as_one_datagram(notify_socket: socket.socket) -> None:
    manager._sd_notify("READY=1\nSTATUS=all modules ready")
    notify_socket.settimeout(2)
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=all modules ready"


def test_a_full_socket_drops_the_message_instead_of_blocking(notify_socket: socket.socket) -> None:
    # Nobody reads: fill the receive queue until a non-blocking send is refused.
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.setblocking(False)
    queued = 0
    try:
        while True:
            filler.sendto(b"x" * 1024, notify_socket.getsockname())
            queued += 1
    except BlockingIOError:
        pass
    finally:
        filler.close()
    assert queued > 0
    sender = threading.Thread(target=manager._sd_notify, args=("WATCHDOG=1",), daemon=True)
    sender.start()
    sender.join(5)
    assert not sender.is_alive(), "_sd_notify blocked on a full notify socket"
    received = []
    notify_socket.setblocking(False)
    try:
        while True:
            received.append(notify_socket.recv(4096))
    except BlockingIOError:
        pass
    assert len(received) == queued  # the watchdog ping was dropped, nothing else lost


def test_a_missing_socket_is_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    manager._sd_notify("READY=1")


@pytest.mark.parametrize(
    ("usec", "pid", "period"),
    [
        ("10000000", None, 5.0),
        ("10000000", "self", 5.0),
        ("10000000", "other", None),
        ("0", None, None),
        ("ten", None, None),
        (None, None, None),
    ],
)
def test_the_watchdog_pings_only_when_systemd_asks_this_process(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, period: float | None
) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            mine = os.getpid()
            monkeypatch.setenv(name, {"self": str(mine), "other": str(mine + 1)}.get(value, value))
    assert manager._watchdog_period() == period
