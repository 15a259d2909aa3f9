# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Hardware-independent modules; each folder holds one module and its manifest."""
