# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Tools for people looking at a running charger (live session view)."""
