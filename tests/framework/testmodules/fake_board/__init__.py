# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""FakeBoard: an evse_board_support provider whose commands trigger vars, errors and failures."""
