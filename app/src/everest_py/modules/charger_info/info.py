# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Assembling ChargerInformation from ordered sources (no bus I/O here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# The properties of /charger_information#/ChargerInformation, in contract order.
FIELDS: tuple[str, ...] = (
    "vendor",
    "model",
    "chargepoint_serial",
    "chargebox_serial",
    "friendly_name",
    "manufacturer",
    "manufacturer_url",
    "model_url",
    "model_number",
    "model_revision",
    "board_revision",
    "firmware_version",
)
REQUIRED: tuple[str, ...] = ("vendor", "model")


class IncompleteInformation(LookupError):
    """A required field is in none of the sources."""


def usable(value: Any) -> bool:
    """Only non-empty strings count as a field value."""
    return isinstance(value, str) and value != ""


def first_line(path: str | Path) -> str | None:
    """The first line of ``path`` without its line break; None if unreadable or empty."""
    try:
        with Path(path).open(encoding="utf-8", errors="replace") as f:
            line = f.readline()
    except OSError:
        return None
    line = line.rstrip("\r\n")
    return line or None


def assemble(
    stores: Sequence[Mapping[str, Any]],
    firmware_version: str | None = None,
    chained: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Merge the sources field by field; the first usable value wins.

    Order: ``firmware_version`` (from the file) for that field, then ``stores`` in connection order,
    then the ``chained`` information. Raises IncompleteInformation if vendor or model is missing.
    """
    info: dict[str, str] = {}
    for name in FIELDS:
        candidates: list[Any] = [firmware_version] if name == "firmware_version" else []
        candidates.extend(store.get(name) for store in stores)
        if chained is not None:
            candidates.append(chained.get(name))
        for value in candidates:
            if usable(value):
                info[name] = value
                break
    missing = [name for name in REQUIRED if name not in info]
    if missing:
        raise IncompleteInformation(
            f"no source has a value for {' and '.join(missing)} (required by ChargerInformation); "
            f"store {' and '.join(repr(m) for m in missing)} in a connected kvs or chain a charger_information"
        )
    return info
