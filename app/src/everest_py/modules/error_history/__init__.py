# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""ErrorHistory: every error raised or cleared in the stack, kept in SQLite."""
