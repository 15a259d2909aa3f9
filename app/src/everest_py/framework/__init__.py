# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The module framework: contracts, manifests, run configs, the bus, modules and the manager."""
