# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Build hook: cffi_modules has no pyproject.toml spelling, so it lives here."""

from setuptools import setup

setup(cffi_modules=["src/everest_bsp/native/_build.py:ffibuilder"])
