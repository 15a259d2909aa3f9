# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Tests of the Auth module: token flow, reservations, and the module on the wire."""
