# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""TarragonSimulator: a simulated Charge Control C (its file tree and physics) for SIL stacks."""
