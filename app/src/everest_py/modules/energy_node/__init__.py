# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""EnergyNode: one fuse of the energy tree, between the energy manager and the consumers below it."""
