# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""BoardUser: requires a board, records what it sees, exposes it through kvs."""
