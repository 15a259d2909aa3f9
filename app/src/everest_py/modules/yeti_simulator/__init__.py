# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""YetiSimulator: a simulated AC power board (pilot, relays, meter, RCD, lock) for SIL stacks."""
