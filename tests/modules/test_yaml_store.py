# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""YamlStore: reading the file, read-only answers over the wire, a clear stop on a bad file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from everest_py.errors import CommandError, ConfigError
from everest_py.modules.yaml_store.store import load_store
from everest_py.testing import Probe

STORE = """\
# a comment
string: hello
quoted_number: "0123"
integer: 42
float: 2.5
bool: true
nothing: null
list: [1, two, 3.0]
nested:
  a: {b: [x]}
  7: seven
when: 2024-05-01T10:00:00Z
day: 2024-05-01
"""


def stack_config(file: Path) -> dict[str, Any]:
    return {
        "active_modules": {
            "yaml": {"module": "YamlStore", "config_module": {"file": str(file)}},
            "probe": {
                "module": "ProbeModule",
                "connections": {"kvs": [{"module_id": "yaml", "implementation_id": "main"}]},
            },
        }
    }


# -- the file ------------------------------------------------------------------------------------


def test_values_as_json(tmp_path: Path) -> None:
    f = tmp_path / "store.yaml"
    f.write_text(STORE)
    assert load_store(f) == {
        "string": "hello",
        "quoted_number": "0123",
        "integer": 42,
        "float": 2.5,
        "bool": True,
        "nothing": None,
        "list": [1, "two", 3.0],
        "nested": {"a": {"b": ["x"]}, "7": "seven"},
        "when": "2024-05-01T10:00:00+00:00",
        "day": "2024-05-01",
    }


def test_empty_file_is_an_empty_store(tmp_path: Path) -> None:
    f = tmp_path / "empty.yaml"
    f.write_text("# nothing yet\n")
    assert load_store(f) == {}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "does not exist"),
        ("a: [1, 2\n", "not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("just text\n", "top level must be a mapping"),
        ("a: .nan\n", "a: nan has no JSON form"),
        ("a: !!binary aGVsbG8=\n", "a: a bytes value has no JSON form"),
    ],
)
def test_bad_files_are_config_errors_naming_file_and_problem(tmp_path: Path, content: str | None, problem: str) -> None:
    f = tmp_path / "store.yaml"
    if content is not None:
        f.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_store(f)
    assert len(err.value.issues) == 1
    assert str(f) in err.value.issues[0]
    assert problem in err.value.issues[0]


# -- over the wire ---------------------------------------------------------------------------------


def test_read_only_kvs_over_the_wire(make_stack, run_probe, tmp_path: Path) -> None:
    f = tmp_path / "store.yaml"
    f.write_text(STORE)
    stack, prefix = make_stack(stack_config(f))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")

    async def scenario(probe: Probe) -> None:
        assert await probe.call("kvs", "load", {"key": "string"}) == "hello"
        assert await probe.call("kvs", "load", {"key": "nested"}) == {"a": {"b": ["x"]}, "7": "seven"}
        assert await probe.call("kvs", "load", {"key": "float"}) == 2.5
        assert await probe.call("kvs", "load", {"key": "missing"}) is None
        assert await probe.call("kvs", "exists", {"key": "nothing"}) is True
        assert await probe.call("kvs", "exists", {"key": "missing"}) is False
        for cmd, args in (("store", {"key": "string", "value": "changed"}), ("delete", {"key": "string"})):
            with pytest.raises(CommandError) as err:
                await probe.call("kvs", cmd, args)
            assert err.value.error_type == "HandlerException"
            assert "read-only" in err.value.message
            assert str(f) in err.value.message
        assert await probe.call("kvs", "load", {"key": "string"}) == "hello"

    run_probe(prefix, scenario)
    assert stack.stop() == 0


def test_missing_file_stops_the_stack_with_a_clear_line(make_stack, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "store.yaml"
    stack, _ = make_stack(stack_config(missing))
    stack.start(wait=False)
    assert stack.wait(timeout_s=20) != 0
    lines = [line for line in stack.log().splitlines() if str(missing) in line]
    assert any("does not exist" in line for line in lines), stack.log()
