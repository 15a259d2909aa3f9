# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""PersistentStore: JSON round trips, durability across kill -9, path handling."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from everest_py.errors import ConfigError
from everest_py.modules.persistent_store.store import SqliteKvs
from everest_py.testing import Probe

VALUES: dict[str, Any] = {
    "null": None,
    "zero": 0,
    "negative": -42,
    "big_int": 2**70,
    "float": 1.5,
    "float_integral": 1.0,
    "float_tiny": 5e-324,
    "float_huge": 1.7976931348623157e308,
    "true": True,
    "false": False,
    "empty_string": "",
    "string": 'Grüße ✓ "quoted" \\ \n tab\t',
    "empty_array": [],
    "array": [1, "a", None, True, 2.5, [[]], {"k": []}],
    "empty_object": {},
    "object": {"z": 1, "a": {"nested": [1, 2.0, None]}, "m": False, "": "empty key"},
}


BURST, WINDOW, KILL_AFTER = 1000, 20, 200


def exact(value: Any) -> str:
    """JSON text that tells 1 from 1.0 and keeps key order: equal text means an exact round trip."""
    return json.dumps(value, ensure_ascii=False)


def stack_config(db: Path) -> dict[str, Any]:
    return {
        "active_modules": {
            "store": {"module": "PersistentStore", "config_module": {"sqlite_db_file_path": str(db)}},
            "probe": {
                "module": "ProbeModule",
                "connections": {"kvs": [{"module_id": "store", "implementation_id": "main"}]},
            },
        }
    }


# -- the store on its own -------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(VALUES))
def test_round_trip_of_every_json_type(tmp_path: Path, key: str) -> None:
    kvs = SqliteKvs(tmp_path / "db.sqlite")
    kvs.store(key, VALUES[key])
    assert exact(kvs.load(key)) == exact(VALUES[key])
    kvs.close()
    reopened = SqliteKvs(tmp_path / "db.sqlite")
    assert exact(reopened.load(key)) == exact(VALUES[key])
    assert reopened.exists(key)
    reopened.close()


def test_load_exists_delete_overwrite(tmp_path: Path) -> None:
    kvs = SqliteKvs(tmp_path / "db.sqlite")
    assert kvs.load("missing") is None
    assert not kvs.exists("missing")
    kvs.store("k", None)
    assert kvs.exists("k"), "a stored null is a value"
    assert kvs.load("k") is None
    kvs.store("k", {"v": 1})
    kvs.store("k", [2])
    assert kvs.load("k") == [2]
    kvs.delete("k")
    assert not kvs.exists("k")
    assert kvs.load("k") is None
    kvs.delete("k")  # deleting a missing key is no error
    kvs.close()


def test_wal_and_full_sync(tmp_path: Path) -> None:
    kvs = SqliteKvs(tmp_path / "db.sqlite")
    kvs.store("k", 1)
    assert kvs.journal_mode == "wal"
    assert kvs._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert (tmp_path / "db.sqlite-wal").exists()
    kvs.close()


def test_relative_path_against_cwd_and_parent_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    kvs = SqliteKvs("deeper/dir/store.db")
    assert kvs.path == tmp_path / "deeper" / "dir" / "store.db"
    kvs.store("k", "v")
    kvs.close()
    assert (tmp_path / "deeper" / "dir" / "store.db").is_file()


def test_a_file_that_is_no_database_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not an sqlite database, not at all" * 100)
    with pytest.raises(ConfigError) as err:
        SqliteKvs(bad)
    assert str(bad) in str(err.value)


def test_values_that_are_not_json_are_refused(tmp_path: Path) -> None:
    kvs = SqliteKvs(tmp_path / "db.sqlite")
    with pytest.raises(ValueError):
        kvs.store("k", float("nan"))
    assert not kvs.exists("k")
    kvs.close()


# -- over the wire -----------------------------------------------------------------------------------


def test_round_trips_over_the_wire(make_stack, run_probe, tmp_path: Path) -> None:
    stack, prefix = make_stack(stack_config(tmp_path / "store.db"))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")

    async def scenario(probe: Probe) -> None:
        assert await probe.call("kvs", "load", {"key": "nothing"}) is None
        assert await probe.call("kvs", "exists", {"key": "nothing"}) is False
        for key, value in VALUES.items():
            assert await probe.call("kvs", "store", {"key": key, "value": value}) is None
        for key, value in VALUES.items():
            assert exact(await probe.call("kvs", "load", {"key": key})) == exact(value), key
            assert await probe.call("kvs", "exists", {"key": key}) is True
        assert await probe.call("kvs", "delete", {"key": "object"}) is None
        assert await probe.call("kvs", "exists", {"key": "object"}) is False
        assert await probe.call("kvs", "load", {"key": "object"}) is None

    run_probe(prefix, scenario)
    assert stack.stop() == 0


def test_completed_stores_survive_kill_9(make_stack, run_probe, tmp_path: Path) -> None:
    db = tmp_path / "state" / "store.db"
    stack, prefix = make_stack(stack_config(db))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    acknowledged: dict[str, Any] = {}

    async def store_and_kill(probe: Probe) -> None:
        for key, value in VALUES.items():
            await probe.call("kvs", "store", {"key": key, "value": value})
            acknowledged[key] = value
        # A stream of stores, WINDOW at a time; the process dies while some are being written.
        killed = asyncio.Event()
        window = asyncio.Semaphore(WINDOW)

        async def store(i: int) -> None:
            async with window:
                if killed.is_set():
                    return
                value = {"i": i, "pad": "x" * 200}
                await probe.call("kvs", "store", {"key": f"burst_{i}", "value": value})
                acknowledged[f"burst_{i}"] = value
                if len(acknowledged) == len(VALUES) + KILL_AFTER:
                    os.kill(stack.pid, signal.SIGKILL)
                    killed.set()

        tasks = [asyncio.create_task(store(i)) for i in range(BURST)]
        async with asyncio.timeout(10):
            await killed.wait()
        # Results already on their way still count; calls the dead process never answers do not.
        await asyncio.wait(tasks, timeout=0.5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    run_probe(prefix, store_and_kill)
    assert stack.wait() == -signal.SIGKILL
    burst = [k for k in acknowledged if k.startswith("burst_")]
    assert KILL_AFTER <= len(burst) < BURST, "the kill came while stores were in flight"

    again, prefix2 = make_stack(stack_config(db), name="config2.yaml")
    again.start(expect="WAITING_FOR_STANDALONE_MODULES")

    async def load_back(probe: Probe) -> dict[str, Any]:
        return {key: await probe.call("kvs", "load", {"key": key}) for key in acknowledged}

    loaded = run_probe(prefix2, load_back)
    for key, value in acknowledged.items():
        assert exact(loaded[key]) == exact(value), key
    assert again.stop() == 0
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
