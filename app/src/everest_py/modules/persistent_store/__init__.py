# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""PersistentStore: a key-value store kept in an SQLite file."""
