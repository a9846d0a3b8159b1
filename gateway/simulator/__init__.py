"""A faithful stand-in for DeepCall's Call Report API v2 ``reportCount``.

A seeded call log (SQLite), fault switches and a record of requests, served
over HTTP exactly as the upstream documents. The gateway's embedded upstream
and the tests' own; it imports nothing of the gateway.
"""

from gateway.simulator.app import ERROR_MESSAGES, PATHS, create_simulator_app
from gateway.simulator.credentials import DEMO_CREDENTIALS, DemoCredential
from gateway.simulator.data import Call, CallFilter
from gateway.simulator.faults import Faults
from gateway.simulator.params import InvalidParametersError
from gateway.simulator.state import Simulator

__all__ = [
    "DEMO_CREDENTIALS",
    "ERROR_MESSAGES",
    "PATHS",
    "Call",
    "CallFilter",
    "DemoCredential",
    "Faults",
    "InvalidParametersError",
    "Simulator",
    "create_simulator_app",
]
