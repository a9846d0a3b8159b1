"""The simulated ``reportCount`` endpoint as a Starlette app.

Both documented paths are served, with and without a trailing slash; every
upstream error is HTTP 200 with ``{"status":"error","message":…,"code":N}``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from http import HTTPStatus

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from gateway.simulator import credentials
from gateway.simulator.faults import Faults
from gateway.simulator.params import InvalidParametersError, SessionAuth, parse_params
from gateway.simulator.state import NOT_JSON, Simulator

logger = logging.getLogger("gateway.simulator")

INVALID_PARAMETERS = 1000
SOMETHING_WENT_WRONG = 1009
DB_CONNECT = 1010
INVALID_TOKEN = 1014
PERMISSION_DENIED = 1015
INVALID_REQUEST_DATA = 1047

ERROR_MESSAGES: Mapping[int, str] = {
    INVALID_PARAMETERS: "Invalid parameters",
    SOMETHING_WENT_WRONG: "Something went wrong",
    DB_CONNECT: "Error in DB connect",
    INVALID_TOKEN: "Invalid token",
    PERMISSION_DENIED: "Permission denied",
    INVALID_REQUEST_DATA: "Invalid Request Data",
}
"""The documented error messages; any other code says "Unknown error"."""

PATHS = (
    "/api/v2/CallReport/reportCount",
    "/api/v2/CallReport/reportCount/",
    "/api/v2/callreport/reportCount",
    "/api/v2/callreport/reportCount/",
)
"""Every path the endpoint answers on."""

_NOT_JSON_BODY = (
    "<!DOCTYPE html><html><head><title>Maintenance</title></head>"
    "<body><h1>We'll be back soon</h1></body></html>"
)


def error_response(code: int) -> JSONResponse:
    """The upstream's error body for ``code``, with HTTP 200 as it always has."""
    message = ERROR_MESSAGES.get(code, "Unknown error")
    return JSONResponse({"status": "error", "message": message, "code": code})


async def _fault_response(faults: Faults) -> Response | None:
    if faults.latency > 0:
        await asyncio.sleep(faults.latency)
    if faults.hang:
        await faults.hold()
    status = faults.http_status
    if status is not None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        title = f"{status} {phrase}"
        body = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
        return HTMLResponse(body, status_code=status)
    if faults.non_json:
        return HTMLResponse(_NOT_JSON_BODY)
    if faults.wrong_shape:
        return JSONResponse({"code": 200, "status": "success", "cnt": "many"})
    if faults.error_code is not None:
        return error_response(faults.error_code)
    return None


async def report_count(request: Request) -> Response:
    """``POST …/reportCount``: count the caller's calls that match ``filter``.

    In this order, the first failing step answering: record the request; fault
    switches (the credential's own, else everyone's); 1047 for a body that is
    empty, not JSON or not an object; 1000 for a wrong credential form or
    parameter (shape before identity); 1014 for an unknown ssid or user id, a
    wrong or expired token; 1015 without LIST_CALL_LOG; else the count over the
    user's own account. 1009 and 1010 come only from ``Faults.error_code``.
    """
    simulator: Simulator = request.app.state.simulator
    payload = simulator.record(await request.body())
    faulted = await _fault_response(simulator.faults_of(payload))
    if faulted is not None:
        return faulted
    if payload is NOT_JSON or not isinstance(payload, dict):
        return error_response(INVALID_REQUEST_DATA)
    try:
        params = parse_params(payload)
    except InvalidParametersError as exc:
        logger.debug("reportCount: invalid parameters: %s", exc)
        return error_response(INVALID_PARAMETERS)
    auth = params.auth
    if isinstance(auth, SessionAuth):
        user = credentials.by_ssid(auth.ssid)
    else:
        user = credentials.by_user_token(auth.user_id, auth.token)
    if user is None or user.expired:
        return error_response(INVALID_TOKEN)
    if not user.can_list:
        return error_response(PERMISSION_DENIED)
    try:
        cnt = await run_in_threadpool(simulator.count_filter, user.account, params.filter)
    except sqlite3.Error:
        logger.exception("reportCount: counting failed")
        return error_response(SOMETHING_WENT_WRONG)
    return JSONResponse({"code": 200, "status": "success", "cnt": cnt})


def create_simulator_app(sim: Simulator | None = None) -> Starlette:
    """A Starlette app serving ``sim`` (``app.state.simulator``).

    Without ``sim`` a default ``Simulator()`` is built, and closed when the app's
    lifespan ends; a simulator passed in stays the caller's to close.
    """
    owned = sim is None
    simulator = Simulator() if sim is None else sim

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owned:
                simulator.close()

    app = Starlette(
        routes=[Route(path, report_count, methods=["POST"]) for path in PATHS],
        lifespan=lifespan,
    )
    app.state.simulator = simulator
    return app
