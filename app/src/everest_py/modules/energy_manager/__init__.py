# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""EnergyManager: shares the power of the energy tree among the EVSEs that want it."""
