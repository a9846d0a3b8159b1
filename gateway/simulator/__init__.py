"""A faithful stand-in for DeepCall's Call Report API v2 ``reportCount``.

``Simulator`` holds a seeded, generated call log (SQLite), the fault switches and
the record of requests; ``create_simulator_app`` serves it over HTTP exactly as
the upstream documents: both credential forms, every error code with HTTP 200,
inclusive date bounds. Used as the gateway's embedded upstream and by the tests.

Modules: ``data`` (generator and store), ``credentials`` (demo users),
``params`` (request validation), ``faults`` (fault switches), ``state``
(``Simulator``), ``app`` (the Starlette app).
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
