# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""everest-py board support: drivers for chargebyte boards and their simulated twins."""

__version__ = "0.1.0"
