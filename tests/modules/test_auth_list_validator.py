# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""AuthListValidator: the list format, full validation results, reloading, bad lists."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from everest_py.modules.auth_list_validator.authlist import AuthList, ListError, load_list, parse_list
from everest_py.testing import Probe

LIST = """\
- token: "04A2B3C4"
- token: BLOCKED1
  status: Blocked
- token: OLD
  expiry_time: 2020-01-01T00:00:00Z
- token: FUTURE
  expiry_time: "2999-12-31T23:00:00+01:00"
  parent_id_token: FLEET-7
  evse_ids: [1, 2]
- token: CHILD
  parent_id_token: {value: "FLEET-7", type: Local}
- token: "00123"
  status: Invalid
"""
NOW = datetime(2024, 5, 1, tzinfo=UTC)


class Log:
    """Collects what the list logs."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.infos: list[str] = []

    def warning(self, msg: str, *args: Any) -> None:
        self.warnings.append(msg % args)

    def info(self, msg: str, *args: Any) -> None:
        self.infos.append(msg % args)


def rewrite(path: Path, text: str) -> None:
    """Write ``text`` and move the modification time on, as a later edit would."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def written(tmp_path: Path, text: str = LIST) -> Path:
    f = tmp_path / "tokens.yaml"
    f.write_text(text)
    return f


# -- the list ----------------------------------------------------------------------------------------------


def test_results(tmp_path: Path, check_result) -> None:
    tokens = AuthList(written(tmp_path), Log())
    results = {t: tokens.validate(t, NOW) for t in ("04a2b3c4", "BLOCKED1", "OLD", "FUTURE", "CHILD", "00123", "x")}
    assert results == {
        "04a2b3c4": {"authorization_status": "Accepted", "tariff_messages": []},
        "BLOCKED1": {"authorization_status": "Blocked", "tariff_messages": []},
        "OLD": {"authorization_status": "Expired", "tariff_messages": [], "expiry_time": "2020-01-01T00:00:00Z"},
        "FUTURE": {
            "authorization_status": "Accepted",
            "tariff_messages": [],
            "expiry_time": "2999-12-31T22:00:00Z",
            "parent_id_token": {"value": "FLEET-7", "type": "Central"},
            "evse_ids": [1, 2],
        },
        "CHILD": {
            "authorization_status": "Accepted",
            "tariff_messages": [],
            "parent_id_token": {"value": "FLEET-7", "type": "Local"},
        },
        "00123": {"authorization_status": "Invalid", "tariff_messages": []},
        "x": {"authorization_status": "Invalid", "tariff_messages": []},
    }
    for result in results.values():
        check_result("auth_token_validator", "validate_token", result)
    late = tokens.validate("FUTURE", datetime(3000, 1, 1, tzinfo=UTC))
    assert late["authorization_status"] == "Expired"


def test_expiry_does_not_turn_a_blocked_token_into_expired() -> None:
    entries = parse_list([{"token": "B", "status": "Blocked", "expiry_time": "2020-01-01T00:00:00Z"}])
    assert entries["b"].result(NOW)["authorization_status"] == "Blocked"


def test_empty_file_is_an_empty_list(tmp_path: Path) -> None:
    assert load_list(written(tmp_path, "# no tokens yet\n")) == {}


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ("- token: 1234\n", "entries[0]: token must be a string (quote it in YAML), not 1234"),
        ("- {}\n", "entries[0]: 'token' is missing"),
        ("- just-a-token\n", "entries[0]: an entry must be a mapping"),
        ('- token: ""\n', "entries[0]: token is empty"),
        (f"- token: {'X' * 37}\n", "entries[0]: token is longer than 36 characters"),
        ("- token: A\n  status: Maybe\n", "entries[0]: status must be one of Accepted, Blocked, Expired, Invalid"),
        ("- token: A\n  expiry: 2020-01-01T00:00:00Z\n", "entries[0]: unknown key(s) expiry"),
        ("- token: A\n  expiry_time: 2020-01-01\n", "entries[0]: expiry_time 2020-01-01 needs a time"),
        ("- token: A\n  expiry_time: 2020-01-01T10:00:00\n", "entries[0]: expiry_time 2020-01-01 10:00:00 has no UTC"),
        ("- token: A\n  expiry_time: soon\n", "entries[0]: expiry_time 'soon' is not an RFC 3339 date-time"),
        ("- token: A\n  evse_ids: [0]\n", "entries[0]: evse_ids must hold integers of 1 or more, not 0"),
        ("- token: A\n  evse_ids: []\n", "entries[0]: evse_ids must be a non-empty list"),
        ("- token: A\n  evse_ids: 1\n", "entries[0]: evse_ids must be a non-empty list"),
        ("- token: A\n  parent_id_token: {value: P, type: Bus}\n", "entries[0]: parent_id_token type must be"),
        ("- token: A\n  parent_id_token: {valu: P}\n", "entries[0]: parent_id_token has unknown key(s) valu"),
        ("- token: A\n- token: B\n- token: a\n", "entries[2]: token 'a' is listed already in entries[0]"),
        ("token: A\n", "the top level must be a list of token entries, not a dict"),
        ("- token: [A\n", "not valid YAML"),
    ],
)
def test_malformed_lists_name_file_entry_and_problem(tmp_path: Path, entries: str, problem: str) -> None:
    f = written(tmp_path, entries)
    with pytest.raises(ListError) as err:
        load_list(f)
    assert len(err.value.issues) == 1, err.value.issues
    assert err.value.issues[0].startswith(f"{f}: ")
    assert problem in err.value.issues[0]


def test_every_bad_entry_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ListError) as err:
        load_list(written(tmp_path, "- token: A\n- token: 5\n- token: B\n- status: Blocked\n"))
    assert [i.split(": ")[1] for i in err.value.issues] == ["entries[1]", "entries[3]"]


def test_missing_file_at_start(tmp_path: Path) -> None:
    with pytest.raises(ListError) as err:
        AuthList(tmp_path / "none.yaml", Log())
    assert err.value.issues == [f"{tmp_path / 'none.yaml'}: the token list file does not exist"]


def test_reload_and_broken_edits_keep_the_previous_list(tmp_path: Path) -> None:
    f = written(tmp_path, "- token: A\n")
    log = Log()
    tokens = AuthList(f, log)
    rewrite(f, "- token: B\n")
    assert tokens.validate("B", NOW)["authorization_status"] == "Accepted"
    assert tokens.validate("A", NOW)["authorization_status"] == "Invalid"
    assert log.infos == [f"{f}: reloaded, 1 token(s)"]

    rewrite(f, "- token: C\n- token: 7\n")
    assert tokens.validate("B", NOW)["authorization_status"] == "Accepted"
    assert tokens.validate("C", NOW)["authorization_status"] == "Invalid"
    assert len(log.warnings) == 1, "a broken version is reported once"
    assert "keeping the previous token list (1 token(s))" in log.warnings[0]
    assert f"{f}: entries[1]: token must be a string" in log.warnings[0]

    f.unlink()
    assert tokens.validate("B", NOW)["authorization_status"] == "Accepted"
    assert tokens.validate("B", NOW)["authorization_status"] == "Accepted"
    assert len(log.warnings) == 2
    assert "No such file or directory" in log.warnings[1]

    rewrite(f, "- token: C\n")
    assert tokens.validate("C", NOW)["authorization_status"] == "Accepted"
    assert tokens.validate("B", NOW)["authorization_status"] == "Invalid"


# -- over the wire -------------------------------------------------------------------------------------------


def stack_config(list_file: Path) -> dict[str, Any]:
    return {
        "active_modules": {
            "auth_list": {"module": "AuthListValidator", "config_module": {"list_file": str(list_file)}},
            "probe": {
                "module": "ProbeModule",
                "connections": {"validator": [{"module_id": "auth_list", "implementation_id": "main"}]},
            },
        }
    }


def token(value: str) -> dict[str, Any]:
    return {"provided_token": {"id_token": {"value": value, "type": "ISO14443"}, "authorization_type": "RFID"}}


def test_validation_over_the_wire(make_stack, run_probe, tmp_path: Path) -> None:
    f = written(tmp_path)
    stack, prefix = make_stack(stack_config(f))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")

    async def validate(probe: Probe, value: str) -> Any:
        return await probe.call("validator", "validate_token", token(value))

    async def scenario(probe: Probe) -> None:
        assert await validate(probe, "04A2B3C4") == {"authorization_status": "Accepted", "tariff_messages": []}
        assert await validate(probe, "FUTURE") == {
            "authorization_status": "Accepted",
            "tariff_messages": [],
            "expiry_time": "2999-12-31T22:00:00Z",
            "parent_id_token": {"value": "FLEET-7", "type": "Central"},
            "evse_ids": [1, 2],
        }
        assert (await validate(probe, "OLD"))["authorization_status"] == "Expired"
        assert (await validate(probe, "BLOCKED1"))["authorization_status"] == "Blocked"
        assert await validate(probe, "stranger") == {"authorization_status": "Invalid", "tariff_messages": []}
        rewrite(f, "- token: stranger\n")
        assert (await validate(probe, "stranger"))["authorization_status"] == "Accepted"
        rewrite(f, "- token: 04A2B3C4\n  status: Sometimes\n")
        assert (await validate(probe, "stranger"))["authorization_status"] == "Accepted", "previous list kept"
        assert (await validate(probe, "04A2B3C4"))["authorization_status"] == "Invalid"

    run_probe(prefix, scenario)
    assert stack.stop() == 0
    kept = [line for line in stack.log().splitlines() if "keeping the previous token list" in line]
    assert len(kept) == 1, stack.log()
    assert "entries[0]: status must be one of" in kept[0]


def test_malformed_list_stops_the_stack_naming_file_and_entry(make_stack, tmp_path: Path) -> None:
    f = written(tmp_path, "- token: GOOD\n- token: ALSO\n  evse_ids: [one]\n")
    stack, _ = make_stack(stack_config(f))
    stack.start(wait=False)
    assert stack.wait(timeout_s=20) != 0
    assert f"{f}: entries[1]: evse_ids must hold integers of 1 or more, not 'one'" in stack.log()
