# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Modules that exist only to exercise the framework in tests."""
