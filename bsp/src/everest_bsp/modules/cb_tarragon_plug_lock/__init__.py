# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""CbTarragonPlugLock: the plug-lock motor of the Tarragon (DRV8872 H-bridge, sense and storage-cap ADC)."""
