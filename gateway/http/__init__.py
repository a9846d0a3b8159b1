"""GraphQL over HTTP: the ``/graphql`` endpoint and everything it reads off a request."""

from gateway.http.callers import CREDENTIAL_HEADERS, SSID_HEADER, Callers, TrustedProxies
from gateway.http.endpoint import GraphQLEndpoint
from gateway.http.ide import ASSETS, ASSETS_PATH
from gateway.http.persisted import PersistedDocuments
from gateway.http.responses import REQUEST_ID_HEADER
from gateway.http.shortcut import Answer, PostShortcut
from gateway.http.websocket import LiveSocket

__all__ = [
    "ASSETS",
    "ASSETS_PATH",
    "CREDENTIAL_HEADERS",
    "REQUEST_ID_HEADER",
    "SSID_HEADER",
    "Answer",
    "Callers",
    "GraphQLEndpoint",
    "LiveSocket",
    "PersistedDocuments",
    "PostShortcut",
    "TrustedProxies",
]
