# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Tests of everest_bsp.tarragon: the control-pilot core, its Python twin, relays, PP."""
