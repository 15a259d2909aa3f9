# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Simulated boards: file trees that look like the board's Linux interfaces, and their physics."""
