# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""DummyTokenProviderManual: offers tokens that arrive as JSON on an external MQTT topic."""
