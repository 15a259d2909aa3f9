# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Logic of the Charge Control C (Tarragon): control-pilot core and its twin, relays, proximity pilot."""
