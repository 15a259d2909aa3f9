# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""BUPowermeter: a terminal UI to bring up a power meter (live values, meter transactions)."""
