# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Type stub of the cffi extension: ``ffi`` and ``lib`` are dynamic, so they are typed loosely."""

from typing import Any

ffi: Any
lib: Any
