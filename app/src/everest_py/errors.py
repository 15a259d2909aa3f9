# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The exception tree of everest-py.

    EverestPyError                 base of everything raised on purpose
    ├── ConfigError                a run config, manifest or contract file is invalid
    │                              (carries every problem found as ``issues``)
    ├── BusError                   the MQTT bus is unreachable or a frame is unusable
    │   └── CommandError           a command returned an EVerest error result
    │                              (``error_type`` is EVerest's ``__everest__error_type``)
    ├── ProtocolError              a peer broke its protocol (``code`` is the wire error code)
    └── HardwareError              a board, port or device failed

Python exceptions never cross a module boundary: a failing command handler is turned into an
error result for the caller, a failing lifecycle hook stops the whole stack (crash-only).
"""

from __future__ import annotations

from collections.abc import Sequence


class EverestPyError(Exception):
    """Base class of all errors raised on purpose by everest-py."""


class ConfigError(EverestPyError):
    """A config, manifest or contract is invalid; ``issues`` holds one line per problem."""

    def __init__(self, issues: Sequence[str]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(self.issues))


class BusError(EverestPyError):
    """The MQTT bus cannot be used (no broker, lost connection, unusable frame)."""


class CommandError(BusError):
    """A command call ended with an EVerest error result."""

    def __init__(self, error_type: str, message: str) -> None:
        self.error_type = error_type
        self.message = message
        super().__init__(f"{error_type}: {message}")


class ProtocolError(EverestPyError):
    """A peer sent something its protocol does not allow; ``code`` is the wire error code."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")


class HardwareError(EverestPyError):
    """A board, port or device did not behave."""
