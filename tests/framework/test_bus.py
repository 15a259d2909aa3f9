# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Bus pieces that can be checked alone: topic filters, the QoS 0 encoder, local delivery."""

from __future__ import annotations

import asyncio

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from everest_py.framework.bus import Bus, encode_publish_qos0, filter_regex, filters_overlap

LEVEL = st.sampled_from(["a", "b", "c", "everest", "x1", ""])


@given(st.lists(LEVEL | st.just("+"), min_size=1, max_size=5), st.booleans(), st.lists(LEVEL, min_size=1, max_size=6))
def test_filter_regex_agrees_with_paho(levels, hash_end, topic_levels):
    flt = "/".join(levels + (["#"] if hash_end else []))
    topic = "/".join(topic_levels)
    assert bool(filter_regex(flt).match(topic)) == mqtt.topic_matches_sub(flt, topic)


def test_qos0_packet_layout():
    assert encode_publish_qos0("a/b", b"hi", False, False) == b"\x30\x07\x00\x03a/bhi"
    assert encode_publish_qos0("a/b", b"hi", True, True) == b"\x31\x08\x00\x03a/b\x00hi"
    big = encode_publish_qos0("t", b"x" * 200, False, False)
    # remaining length 203 = 0xCB 0x01 as a variable byte integer
    assert big[:3] == b"\x30\xcb\x01"
    assert len(big) == 3 + 203


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_frames_reach_other_clients_and_ourselves_once(broker, protocol):
    async def scenario() -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
        endpoint = broker.unix if protocol == "5" else broker.tcp
        a = Bus(endpoint, protocol=protocol)
        b = Bus(endpoint, protocol=protocol)
        await a.connect()
        await b.connect()
        got_a: list[tuple[str, bytes]] = []
        got_b: list[tuple[str, bytes]] = []
        done = asyncio.Event()
        # overlapping filters on one connection: each handler sees each frame once
        a.subscribe("t/1", lambda t, p: got_a.append((t, p)))
        a.subscribe("t/#", lambda t, p: got_a.append(("#", p)))
        b.subscribe("t/+", lambda t, p: (got_b.append((t, p)), done.set() if len(got_b) == 3 else None))
        await asyncio.sleep(0.1)
        a.publish("t/1", b"one", qos=0)
        a.publish("t/1", b"one", qos=0)  # the same frame twice is two deliveries
        a.publish("t/2", "two", qos=2)
        async with asyncio.timeout(5):
            await done.wait()
        await asyncio.sleep(0.2)
        await a.close()
        await b.close()
        return got_a, got_b

    got_a, got_b = asyncio.run(scenario())
    assert got_b == [("t/1", b"one"), ("t/1", b"one"), ("t/2", b"two")]
    assert sorted(got_a) == sorted([("t/1", b"one"), ("#", b"one"), ("t/1", b"one"), ("#", b"one"), ("#", b"two")])


SMALL = st.sampled_from(["a", "b", ""])
TOPICS = ["/".join(p) for n in range(1, 7) for p in __import__("itertools").product(["a", "b", "", "z"], repeat=n)]


@given(
    st.lists(SMALL | st.just("+"), min_size=1, max_size=4),
    st.booleans(),
    st.lists(SMALL | st.just("+"), min_size=1, max_size=4),
    st.booleans(),
)
def test_filters_overlap_iff_a_topic_matches_both(a_levels, a_hash, b_levels, b_hash):
    a = "/".join(a_levels + (["#"] if a_hash else []))
    b = "/".join(b_levels + (["#"] if b_hash else []))
    ra, rb = filter_regex(a), filter_regex(b)
    assert filters_overlap(a, b) == any(ra.match(t) and rb.match(t) for t in TOPICS)
