# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""AuthListValidator: validates tokens against a YAML list of tokens with status and limits."""
