"""Opening a live stream: a subscription goes by the rules a query goes by, then streams.

The persisted documents (APQ, the trusted list, persisted-only mode), the
document limits, the introspection setting and the fan-out budget apply to a
subscription exactly as to a query, over every transport. A subscription
that cannot start is refused with its errors, in the shape a query's take.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from graphql import OperationType
from strawberry import Schema

from gateway.api import Asked, RequestBudget, Services, Stream
from gateway.api.results import rejected
from gateway.config import Settings
from gateway.documents import Documents
from gateway.errors import DocumentError, GatewayError, StreamEndedError
from gateway.http.parameters import OperationRequest
from gateway.http.persisted import PersistedDocuments
from gateway.model import Caller

SUBSCRIPTIONS: Final = frozenset({OperationType.SUBSCRIPTION})


@dataclass
class Refused:
    """Why a subscription did not start: its errors; ``stopping`` when the gateway is."""

    errors: list[dict[str, Any]] = field(default_factory=list)
    stopping: bool = False


class Subscriptions:
    """Turns subscription operations into live streams, for every transport."""

    def __init__(
        self,
        schema: Schema,
        settings: Settings,
        persisted: PersistedDocuments,
        documents: Documents,
    ) -> None:
        self.schema = schema
        self.settings = settings
        self.persisted = persisted
        self.documents = documents

    def open(
        self,
        op: OperationRequest,
        caller: Caller,
        request_id: str,
        transport: str,
        services: Services,
    ) -> Stream | Refused:
        """A stream of ``op``'s events for ``caller``, or why there is none."""
        try:
            resolved = self.persisted.resolve(op)
        except GatewayError as exc:
            return Refused([exc.formatted()])
        prepared = self.documents.prepare(resolved.text)
        if prepared.document is None:
            return Refused([rejected(error, prepared.code) for error in prepared.errors])
        self.persisted.register(resolved)
        try:
            operation = prepared.select(op.operation_name, SUBSCRIPTIONS)
        except GatewayError as exc:
            return Refused([exc.formatted()])
        budget = RequestBudget(self.settings.max_fanout, 1)
        beyond = budget.planned_beyond(operation.upstream_fields)
        if beyond is not None:
            return Refused([DocumentError(beyond).formatted()])
        asked = Asked(
            self.schema,
            prepared,
            resolved.text,
            op.operation_name,
            op.variables,
            caller,
            request_id,
            hide_suggestions=not self.settings.introspection,
        )
        assert services.live is not None
        try:
            return services.live.open(asked, transport)
        except StreamEndedError as exc:
            return Refused([exc.formatted()], stopping=True)
        except GatewayError as exc:
            return Refused([exc.formatted()])

    def kind(self, op: OperationRequest) -> OperationType | None:
        """The type of the operation ``op`` names, when its document is valid; else None."""
        try:
            resolved = self.persisted.resolve(op)
        except GatewayError:
            return None
        prepared = self.documents.prepare(resolved.text)
        if prepared.document is None:
            return None
        try:
            return prepared.select(op.operation_name, ANY_KIND).type
        except GatewayError:
            return None


ANY_KIND: Final = frozenset(OperationType)
