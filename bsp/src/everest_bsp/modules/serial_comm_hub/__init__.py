# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""SerialCommHub: Modbus RTU transfers on one serial line, shared by every module that needs it."""
