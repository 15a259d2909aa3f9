# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""everest-py: an EVerest-compatible charging station stack in Python."""

__version__ = "0.1.0"
