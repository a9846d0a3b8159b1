"""HTTP responses of ``/graphql``: JSON by orjson, and the answer to a request refused whole."""

from __future__ import annotations

from typing import Any, Final

import orjson
from starlette.responses import Response

from gateway.errors import RequestError

REQUEST_ID_HEADER: Final = "X-Request-ID"


class OrjsonResponse(Response):
    """JSON rendered by orjson: several times faster than the standard library's."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """``content`` as compact UTF-8 JSON."""
        return orjson.dumps(content)


def error_response(
    error: RequestError, request_id: str, media_type: str = "application/json"
) -> OrjsonResponse:
    """The answer to a request refused whole, before any operation ran: its one error."""
    return OrjsonResponse(
        {"errors": [error.formatted()]},
        status_code=error.status,
        headers={**error.headers, REQUEST_ID_HEADER: request_id},
        media_type=media_type,
    )
