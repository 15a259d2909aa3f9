# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""EvseManager: charging logic of one EVSE (basic AC charging per IEC 61851-1)."""
