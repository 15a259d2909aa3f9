# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""LocalAllowlistTokenValidator: the file format, reloading on change, a missing file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from everest_py.modules.local_allowlist_token_validator.allowlist import Allowlist, parse_allowlist
from everest_py.testing import Probe


class Log:
    """Collects what the allow list logs."""

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


def test_parse() -> None:
    text = "# tokens of the depot\n\n  04A2B3C4  \nDEADBEEF\n\t\n#DISABLED\nwith inner space\r\n"
    assert parse_allowlist(text) == {"04a2b3c4", "deadbeef", "with inner space"}


def test_lookup_is_case_insensitive_and_follows_edits(tmp_path: Path) -> None:
    f = tmp_path / "allow.txt"
    f.write_text("DEADBEEF\n")
    log = Log()
    allow = Allowlist(f, log)
    assert allow.contains("deadbeef")
    assert allow.contains("DEADBEEF")
    assert not allow.contains("CAFE")
    assert not allow.contains("")
    rewrite(f, "CAFE\n")
    assert allow.contains("cafe")
    assert not allow.contains("DEADBEEF")
    assert log.infos == [f"{f}: 1 token(s) allowed", f"{f}: 1 token(s) allowed"]
    allow.contains("cafe")
    assert len(log.infos) == 2, "an unchanged file is not read again"


def test_missing_file_means_invalid_with_one_warning(tmp_path: Path) -> None:
    f = tmp_path / "later.txt"
    log = Log()
    allow = Allowlist(f, log)
    assert not allow.contains("A1")
    assert not allow.contains("A1")
    assert log.warnings == [f"{f} does not exist: every token is Invalid until it does"]
    f.write_text("A1\n")
    assert allow.contains("A1")
    f.unlink()
    assert not allow.contains("A1"), "a removed file lists no token any more"
    assert len(log.warnings) == 2


def test_unreadable_file(tmp_path: Path) -> None:
    log = Log()
    allow = Allowlist(tmp_path, log)  # a directory
    assert not allow.contains("A1")
    assert not allow.contains("A1")
    assert len(log.warnings) == 1
    assert "cannot be read" in log.warnings[0]


def stack_config(allowlist: Path) -> dict[str, Any]:
    return {
        "active_modules": {
            "allow": {"module": "LocalAllowlistTokenValidator", "config_module": {"allowlist_file": str(allowlist)}},
            "probe": {
                "module": "ProbeModule",
                "connections": {"validator": [{"module_id": "allow", "implementation_id": "token_validator"}]},
            },
        }
    }


def token(value: str) -> dict[str, Any]:
    return {"provided_token": {"id_token": {"value": value, "type": "ISO14443"}, "authorization_type": "RFID"}}


ACCEPTED = {"authorization_status": "Accepted", "tariff_messages": []}
INVALID = {"authorization_status": "Invalid", "tariff_messages": []}


def test_validation_over_the_wire(make_stack, run_probe, tmp_path: Path) -> None:
    f = tmp_path / "allowlist_rfid.txt"
    f.write_text("# staff\n04A2B3C4\n\nDEADBEEF\n")
    stack, prefix = make_stack(stack_config(f))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")

    async def scenario(probe: Probe) -> None:
        assert await probe.call("validator", "validate_token", token("04A2B3C4")) == ACCEPTED
        assert await probe.call("validator", "validate_token", token("deadbeef")) == ACCEPTED
        assert await probe.call("validator", "validate_token", token("# staff")) == INVALID
        assert await probe.call("validator", "validate_token", token("")) == INVALID
        rewrite(f, "NEWCOMER\n")
        assert await probe.call("validator", "validate_token", token("NEWCOMER")) == ACCEPTED
        assert await probe.call("validator", "validate_token", token("04A2B3C4")) == INVALID

    run_probe(prefix, scenario)
    assert stack.stop() == 0


def test_missing_file_over_the_wire(make_stack, run_probe, tmp_path: Path) -> None:
    f = tmp_path / "absent.txt"
    stack, prefix = make_stack(stack_config(f))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")

    async def scenario(probe: Probe) -> None:
        assert await probe.call("validator", "validate_token", token("04A2B3C4")) == INVALID
        assert await probe.call("validator", "validate_token", token("04A2B3C4")) == INVALID

    run_probe(prefix, scenario)
    assert stack.stop() == 0
    warnings = [line for line in stack.log().splitlines() if "does not exist" in line]
    assert len(warnings) == 1, stack.log()
    assert str(f) in warnings[0]
