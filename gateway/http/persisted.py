"""Persisted documents: Apollo's automatic persisted queries, and a list of trusted ones.

An operation may name its document instead of sending it, by
``extensions.persistedQuery`` (Apollo's link, also over GET) or ``documentId``
(the GraphQL over HTTP proposal); this turns the name into the text, before
any document is prepared and before any upstream call.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cachetools import LRUCache

from gateway.config import bare_id
from gateway.errors import (
    BadUserInputError,
    PersistedQueryIdRequiredError,
    PersistedQueryNotFoundError,
    PersistedQueryNotInListError,
    UnsupportedRequestError,
)
from gateway.http.parameters import OperationRequest

#: Longer APQ documents are answered but not kept (as gateway.documents caches its own).
MAX_REGISTERED_CHARS: Final = 32 * 1024
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def sha256_hex(text: str) -> str:
    """The SHA-256 of ``text`` (UTF-8) in lowercase hex, as Apollo's link and tools write it."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Resolved:
    """The text to run, and the APQ hash to register it under once it validates."""

    text: str
    register: str | None = None


class PersistedDocuments:
    """Resolves persisted ids to documents: a trusted list, and a bounded APQ store.

    The APQ store is one LRU of ``maxsize`` documents (each at most
    ``MAX_REGISTERED_CHARS``) shared by every caller: an entry is only ever the
    text whose SHA-256 is its key, so no caller can make another run anything
    but what that other asked for; a caller who registers many documents can
    at worst evict others', which costs them one more round trip to register
    again. The trusted list is fixed at start-up.
    """

    def __init__(
        self, listed: Mapping[str, str] | None = None, *, persisted_only: bool, maxsize: int
    ) -> None:
        self._listed = {bare_id(key): body for key, body in (listed or {}).items()}
        self._persisted_only = persisted_only
        self._registered: LRUCache[str, str] = LRUCache(maxsize=maxsize)

    def __len__(self) -> int:
        return len(self._registered)

    def resolve(self, op: OperationRequest) -> Resolved:
        """The document ``op`` runs; raises a GatewayError (or a RequestError) when none may.

        - A listed id runs its listed document; an id registered by APQ, its own.
        - With ``persisted_only``, a text is ``PERSISTED_QUERY_ID_REQUIRED`` and an
          id not listed ``PERSISTED_QUERY_NOT_IN_LIST``; else an unknown hash is
          ``PERSISTED_QUERY_NOT_FOUND`` and the client sends it again with its text.
        - A hash sent with a text must be that text's SHA-256 (else
          ``BAD_USER_INPUT``); the text is registered once it has validated.
        """
        apq_hash = _apq_hash(op.extensions)
        wanted = bare_id(op.document_id) if op.document_id is not None else apq_hash
        if op.document_id is not None and apq_hash is not None and wanted != apq_hash:
            raise UnsupportedRequestError("documentId and persistedQuery name different ids")
        if op.query is not None:
            if self._persisted_only:
                raise PersistedQueryIdRequiredError(
                    "Only listed documents run here: send a documentId "
                    "(or extensions.persistedQuery), not the document's text"
                )
            if wanted is None or self._listed.get(wanted) == op.query:
                return Resolved(op.query)
            if sha256_hex(op.query) != wanted:
                raise BadUserInputError("The persisted query's hash does not match its document")
            return Resolved(op.query, register=apq_hash)
        assert wanted is not None  # gateway.http.parameters refuses an operation with neither
        listed = self._listed.get(wanted)
        if listed is not None:
            return Resolved(listed)
        if self._persisted_only:
            raise PersistedQueryNotInListError("No listed document has this id")
        registered = self._registered.get(wanted)
        if registered is None:
            # Apollo's clients (and urql's, Relay's) look for this exact message, too.
            raise PersistedQueryNotFoundError("PersistedQueryNotFound")
        return Resolved(registered)

    def register(self, resolved: Resolved) -> None:
        """Remember an APQ document that has validated, unless it is too long to keep."""
        if resolved.register is not None and len(resolved.text) <= MAX_REGISTERED_CHARS:
            self._registered[resolved.register] = resolved.text


def _apq_hash(extensions: Mapping[str, Any] | None) -> str | None:
    """The ``sha256Hash`` of ``extensions.persistedQuery``, checked; None when absent."""
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise UnsupportedRequestError("extensions.persistedQuery must be {version: 1, sha256Hash}")
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest.lower()):
        raise UnsupportedRequestError("persistedQuery.sha256Hash must be 64 hex digits")
    return digest.lower()
