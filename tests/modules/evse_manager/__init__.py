# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Tests of the EvseManager module: both state machines, energy, sessions, and whole stacks."""
