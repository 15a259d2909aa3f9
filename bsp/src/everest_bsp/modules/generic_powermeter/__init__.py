# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""GenericPowermeter: a Modbus RTU energy meter described by a register model file."""
