# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""ChargerInfo: merging the sources in order, the firmware version file, the chain, missing fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from everest_py.errors import CommandError
from everest_py.framework.contracts import Contracts
from everest_py.modules.charger_info.info import FIELDS, IncompleteInformation, assemble, first_line
from everest_py.testing import Probe

# -- the logic ---------------------------------------------------------------------------------------


def test_fields_are_those_of_the_contract(contracts: Contracts) -> None:
    info_type = contracts.types("charger_information")["ChargerInformation"]
    assert set(FIELDS) == set(info_type["properties"])
    assert all(p["type"] == "string" for p in info_type["properties"].values())
    assert info_type["required"] == ["vendor", "model"]


def test_first_source_with_a_string_wins() -> None:
    stores = [
        {"vendor": "First", "model": "", "chargepoint_serial": 123},
        {"vendor": "Second", "model": "M2", "chargepoint_serial": "S2", "friendly_name": "F2"},
    ]
    chained = {"vendor": "Chain", "model": "CM", "friendly_name": "CF", "board_revision": "B3"}
    assert assemble(stores, None, chained) == {
        "vendor": "First",
        "model": "M2",  # empty strings count as missing
        "chargepoint_serial": "S2",  # a number is no field value
        "friendly_name": "F2",
        "board_revision": "B3",  # the chain fills what the stores lack
    }


def test_firmware_version_file_first_then_stores_then_chain() -> None:
    base = {"vendor": "V", "model": "M"}
    assert (
        assemble([{**base, "firmware_version": "kvs"}], "file", {**base, "firmware_version": "chain"})[
            "firmware_version"
        ]
        == "file"
    )
    assert (
        assemble([{**base, "firmware_version": "kvs"}], None, {**base, "firmware_version": "chain"})["firmware_version"]
        == "kvs"
    )
    assert assemble([base], None, {**base, "firmware_version": "chain"})["firmware_version"] == "chain"
    assert "firmware_version" not in assemble([base])


@pytest.mark.parametrize(
    ("stores", "chained", "missing"),
    [
        ([{}], None, "vendor and model"),
        ([{"vendor": "V"}], None, "model"),
        ([{"model": "M"}, {"vendor": ""}], {}, "vendor"),
    ],
)
def test_vendor_and_model_are_required(stores: list[dict[str, Any]], chained: Any, missing: str) -> None:
    with pytest.raises(IncompleteInformation) as err:
        assemble(stores, None, chained)
    assert f"no source has a value for {missing} " in str(err.value)


def test_first_line(tmp_path: Path) -> None:
    f = tmp_path / "version"
    f.write_bytes(b"1.2.3-rc1 \r\nsecond line\n")
    assert first_line(f) == "1.2.3-rc1 "
    f.write_text("no newline")
    assert first_line(f) == "no newline"
    f.write_text("\nafter an empty first line\n")
    assert first_line(f) is None
    assert first_line(tmp_path / "missing") is None
    assert first_line(tmp_path) is None  # a directory


# -- over the wire -------------------------------------------------------------------------------------


def stack_config(yaml_file: Path, firmware_file: Path, chain: bool) -> dict[str, Any]:
    info: dict[str, Any] = {
        "module": "ChargerInfo",
        "config_module": {"firmware_version_file": str(firmware_file)},
        "connections": {
            "kvs": [
                {"module_id": "yaml", "implementation_id": "main"},
                {"module_id": "probe", "implementation_id": "kvs"},
            ]
        },
    }
    if chain:
        info["connections"]["charger_information"] = [{"module_id": "probe", "implementation_id": "chain"}]
    return {
        "active_modules": {
            "yaml": {"module": "YamlStore", "config_module": {"file": str(yaml_file)}},
            "info": info,
            "probe": {
                "module": "ProbeModule",
                "connections": {"info": [{"module_id": "info", "implementation_id": "main"}]},
            },
        }
    }


def probe_kvs(values: dict[str, Any]) -> Any:
    """A kvs on the probe's implementation ``kvs`` (the probe calls handlers with keyword arguments)."""

    def load(key: str) -> Any:
        return values.get(key)

    def exists(key: str) -> bool:
        return key in values

    def store(key: str, value: Any) -> None:
        values[key] = value

    def delete(key: str) -> None:
        values.pop(key, None)

    def setup(probe: Probe) -> None:
        for name, handler in (("load", load), ("exists", exists), ("store", store), ("delete", delete)):
            probe.implement("kvs", name, handler)

    return setup


def test_merged_information_over_the_wire(make_stack, run_probe, tmp_path: Path, check_result) -> None:
    yaml_file = tmp_path / "info.yaml"
    yaml_file.write_text('vendor: Acme\nfriendly_name: Yaml Name\nchargepoint_serial: 12345\nmodel_url: ""\n')
    firmware = tmp_path / "firmware_version"
    firmware.write_text("1.2.3\nbuilt yesterday\n")
    stack, prefix = make_stack(stack_config(yaml_file, firmware, chain=True))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    kvs = {"model": "Probe Model", "friendly_name": "Probe Name", "firmware_version": "kvs-fw", "model_url": "u"}
    chain = {"vendor": "ChainVendor", "model": "ChainModel", "chargepoint_serial": "SER-1", "board_revision": "B"}

    def setup(probe: Probe) -> None:
        probe_kvs(kvs)(probe)
        probe.implement("chain", "get_charger_information", lambda: chain)

    async def scenario(probe: Probe) -> list[Any]:
        first = await probe.call("info", "get_charger_information")
        firmware.unlink()
        second = await probe.call("info", "get_charger_information")
        return [first, second]

    first, second = run_probe(prefix, scenario, setup)
    expected = {
        "vendor": "Acme",
        "model": "Probe Model",
        "friendly_name": "Yaml Name",
        "firmware_version": "1.2.3",
        "chargepoint_serial": "SER-1",
        "board_revision": "B",
        "model_url": "u",
    }
    assert first == expected
    check_result("charger_information", "get_charger_information", first)
    assert second == {**expected, "firmware_version": "kvs-fw"}, "without the file the kvs has the version"
    assert stack.stop() == 0


def test_missing_vendor_and_model_is_an_error_result(make_stack, run_probe, tmp_path: Path) -> None:
    yaml_file = tmp_path / "info.yaml"
    yaml_file.write_text("friendly_name: Nameless\n")
    stack, prefix = make_stack(stack_config(yaml_file, tmp_path / "no_firmware_file", chain=False))
    stack.start(expect="WAITING_FOR_STANDALONE_MODULES")
    kvs: dict[str, Any] = {}

    async def scenario(probe: Probe) -> Any:
        with pytest.raises(CommandError) as err:
            await probe.call("info", "get_charger_information")
        assert err.value.error_type == "HandlerException"
        assert "vendor and model" in err.value.message
        kvs.update(vendor="Late", model="Comer")
        return await probe.call("info", "get_charger_information")

    assert run_probe(prefix, scenario, probe_kvs(kvs)) == {
        "vendor": "Late",
        "model": "Comer",
        "friendly_name": "Nameless",
    }
    assert stack.stop() == 0
