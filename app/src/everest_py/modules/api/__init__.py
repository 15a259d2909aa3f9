# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""API: EVSE state, measurements and commands on a plain MQTT API (everest_api/...)."""
