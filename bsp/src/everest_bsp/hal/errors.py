# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Errors of the HAL: all are ``HardwareError`` of everest-py."""

from __future__ import annotations

from everest_py.errors import HardwareError


class NotFoundError(HardwareError):
    """A device (GPIO line, PWM chip, IIO channel) named in the config does not exist."""


class LineNotFoundError(NotFoundError):
    """No GPIO chip under the root has a line of this name."""


class LineBusyError(HardwareError):
    """The line is already requested by another consumer (the kernel's EBUSY)."""
