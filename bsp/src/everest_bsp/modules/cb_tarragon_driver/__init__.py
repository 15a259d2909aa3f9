# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""CbTarragonDriver: pilot, contactors, PP and RCM input of the Charge Control C."""
