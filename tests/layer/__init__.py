# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Checks of the Yocto layers and kas files that run without bitbake."""
