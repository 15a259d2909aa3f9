# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Auth: decides which token may charge at which EVSE, and keeps the reservations."""
