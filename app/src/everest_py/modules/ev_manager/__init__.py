# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""EvManager: a scripted car for SIL stacks, driving the car side of a simulated board."""
