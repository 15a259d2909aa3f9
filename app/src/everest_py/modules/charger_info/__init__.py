# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""ChargerInfo: charger metadata gathered from key-value stores, a file and an optional chain."""
