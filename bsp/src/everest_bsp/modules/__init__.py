# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""everest-py modules of the board support package (registered as entry points)."""
