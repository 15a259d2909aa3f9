# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""RpcApi: a JSON-RPC 2.0 API over WebSocket for external applications."""
