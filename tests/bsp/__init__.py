# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Tests of the everest_bsp distribution (Tarragon BSP), mirroring bsp/src/everest_bsp."""
