# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""``python -m everest_py`` is the ``everest-py`` command."""

from everest_py.framework.cli import main

main()
