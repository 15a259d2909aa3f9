# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Thin typed access to the Linux interfaces of a board, each with a simulated twin.

Every function takes a ``root`` directory: ``/`` on a board, a temporary tree for the simulator.
Below it, GPIO chips are ``dev/gpiochip*`` (character devices, or simulated chip files), PWM chips
are ``sys/class/pwm/pwmchip*`` and IIO devices ``sys/bus/iio/devices/*``, so the code above the
HAL cannot tell the simulator from a board.
"""

from everest_bsp.hal.errors import LineBusyError, LineNotFoundError, NotFoundError

__all__ = ["LineBusyError", "LineNotFoundError", "NotFoundError"]
