# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
