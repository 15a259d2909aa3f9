# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""CbTarragonDIs: the reference PWM that sets the switching threshold of the Tarragon's digital inputs."""
