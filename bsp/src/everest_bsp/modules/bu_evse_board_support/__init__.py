# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""BUEvseBoardSupport: an interactive terminal console for bringing up an evse_board_support driver."""
