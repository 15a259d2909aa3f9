# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""YamlStore: a read-only key-value store backed by a YAML file."""
