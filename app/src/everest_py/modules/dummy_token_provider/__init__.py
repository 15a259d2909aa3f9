# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""DummyTokenProvider: offers one configured token whenever its EVSE asks for authorization."""
