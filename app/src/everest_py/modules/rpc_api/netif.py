# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The address to listen on for a ``websocket_interface`` value: an interface name, "all" or an IP address."""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct

SIOCGIFADDR = 0x8915  # Linux: get the IPv4 address of an interface
IFNAMSIZ = 16


def ioctl_ipv4(name: str) -> str:
    """The IPv4 address of network interface ``name``; OSError if it has none or does not exist."""
    if not name or len(name) >= IFNAMSIZ or "/" in name:
        raise OSError(f"{name!r} is not a network interface name")
    request = struct.pack("256s", name.encode())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        reply = fcntl.ioctl(s.fileno(), SIOCGIFADDR, request)
    return socket.inet_ntoa(reply[20:24])


def listen_address(interface: str) -> str:
    """Where to bind for ``websocket_interface``: "all" is every IPv4 interface, "lo" the loopback address.

    ValueError if ``interface`` is neither an IP address nor an interface with an IPv4 address.
    """
    name = interface.strip()
    if name == "all":
        return "0.0.0.0"  # noqa: S104 - "all" asks for every interface
    if name == "lo":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    try:
        return ioctl_ipv4(name)
    except OSError as err:
        raise ValueError(f"websocket_interface {interface!r}: no IPv4 address on that interface ({err})") from None
