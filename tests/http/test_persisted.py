"""Unit tests for persisted documents: manifest files, APQ's store, and the trusted list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_manifest
from gateway.errors import (
    BadUserInputError,
    PersistedQueryIdRequiredError,
    PersistedQueryNotFoundError,
    PersistedQueryNotInListError,
    RequestError,
)
from gateway.http.parameters import OperationRequest
from gateway.http.persisted import (
    MAX_REGISTERED_CHARS,
    PersistedDocuments,
    Resolved,
    sha256_hex,
)

DOC = "{ callCount }"
OTHER = "{ __typename }"


def op(
    query: str | None = None,
    digest: str | None = None,
    document_id: str | None = None,
    extensions: dict[str, Any] | None = None,
) -> OperationRequest:
    """An operation as gateway.http.parameters would build it."""
    if digest is not None:
        extensions = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    return OperationRequest(query, None, None, extensions, document_id)


def write(tmp_path: Path, content: object) -> Path:
    """``content`` as a JSON file."""
    path = tmp_path / "manifest.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_apollo_manifest_loads_by_id(tmp_path: Path) -> None:
    """An Apollo persisted-query manifest gives its bodies by id."""
    path = write(
        tmp_path,
        {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": sha256_hex(DOC), "name": "A", "type": "query", "body": DOC},
                {"id": "custom-id", "name": "B", "type": "query", "body": OTHER},
            ],
        },
    )
    assert load_manifest(path) == {sha256_hex(DOC): DOC, "custom-id": OTHER}


def test_id_map_loads_and_sha256_prefixes_are_dropped(tmp_path: Path) -> None:
    """The {id: body} map of GraphQL Codegen and Relay loads; a sha256: prefix is not kept."""
    path = write(tmp_path, {f"sha256:{sha256_hex(DOC)}": DOC, "relay-md5": OTHER})
    assert load_manifest(path) == {sha256_hex(DOC): DOC, "relay-md5": OTHER}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not JSON"),
        ([DOC], "expected an apollo-persisted-query-manifest"),
        ({"id": 3}, "expected an apollo-persisted-query-manifest"),
        ({"format": "apollo-persisted-query-manifest", "version": 2}, '"version": 1'),
        ({"format": "apollo-persisted-query-manifest", "version": 1}, "must be a list"),
        (
            {"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id": 1}]},
            "operation 0 needs a string id",
        ),
        ({}, "lists no documents"),
    ],
)
def test_bad_manifests_say_what_is_wrong(tmp_path: Path, content: object, reason: str) -> None:
    """Each malformed file is a ValueError whose message says what to fix."""
    with pytest.raises(ValueError, match=reason):
        load_manifest(write(tmp_path, content))


def test_a_missing_manifest_is_a_value_error(tmp_path: Path) -> None:
    """A file that cannot be read is reported as a ValueError too (start-up shows one line)."""
    with pytest.raises(ValueError, match="cannot read it"):
        load_manifest(tmp_path / "absent.json")


def test_apq_miss_register_and_hit() -> None:
    """An unknown hash is NOT_FOUND; a verified document registers under it once it validates."""
    store = PersistedDocuments(persisted_only=False, maxsize=10)
    digest = sha256_hex(DOC)
    with pytest.raises(PersistedQueryNotFoundError):
        store.resolve(op(digest=digest))
    resolved = store.resolve(op(DOC, digest=digest.upper()))
    assert resolved == Resolved(DOC, register=digest)
    assert len(store) == 0  # registered by the endpoint only once the document validates
    store.register(resolved)
    assert store.resolve(op(digest=digest)) == Resolved(DOC)


def test_a_hash_that_does_not_match_is_refused() -> None:
    """A document under another document's hash is BAD_USER_INPUT."""
    store = PersistedDocuments(persisted_only=False, maxsize=10)
    with pytest.raises(BadUserInputError):
        store.resolve(op(DOC, digest=sha256_hex(OTHER)))


def test_the_apq_store_is_bounded_and_keeps_no_long_documents() -> None:
    """The store holds at most maxsize documents, none longer than MAX_REGISTERED_CHARS."""
    store = PersistedDocuments(persisted_only=False, maxsize=2)
    texts = [f"{{ a{i}: callCount }}" for i in range(3)]
    for text in texts:
        store.register(Resolved(text, register=sha256_hex(text)))
    assert len(store) == 2
    with pytest.raises(PersistedQueryNotFoundError):
        store.resolve(op(digest=sha256_hex(texts[0])))
    long = "{ callCount }" + " " * MAX_REGISTERED_CHARS
    store.register(Resolved(long, register=sha256_hex(long)))
    with pytest.raises(PersistedQueryNotFoundError):
        store.resolve(op(digest=sha256_hex(long)))


def test_listed_documents_run_by_document_id_or_hash() -> None:
    """A listed id runs its document, named by documentId (prefixed or not) or persistedQuery."""
    store = PersistedDocuments(
        {"custom": OTHER, sha256_hex(DOC): DOC}, persisted_only=True, maxsize=1
    )
    assert store.resolve(op(document_id="custom")) == Resolved(OTHER)
    assert store.resolve(op(document_id=f"sha256:{sha256_hex(DOC)}")) == Resolved(DOC)
    assert store.resolve(op(digest=sha256_hex(DOC))) == Resolved(DOC)


def test_persisted_only_refuses_text_and_unknown_ids() -> None:
    """Persisted-only: text is ID_REQUIRED (even with its hash), an unknown id NOT_IN_LIST."""
    store = PersistedDocuments({sha256_hex(DOC): DOC}, persisted_only=True, maxsize=10)
    with pytest.raises(PersistedQueryIdRequiredError):
        store.resolve(op(DOC))
    with pytest.raises(PersistedQueryIdRequiredError):
        store.resolve(op(DOC, digest=sha256_hex(DOC)))
    with pytest.raises(PersistedQueryNotInListError):
        store.resolve(op(digest=sha256_hex(OTHER)))
    store.register(Resolved(OTHER, register=sha256_hex(OTHER)))
    with pytest.raises(PersistedQueryNotInListError):  # APQ cannot widen the list
        store.resolve(op(digest=sha256_hex(OTHER)))


@pytest.mark.parametrize(
    "extensions",
    [
        {"persistedQuery": "abc"},
        {"persistedQuery": {"version": 2, "sha256Hash": "0" * 64}},
        {"persistedQuery": {"version": 1, "sha256Hash": "xyz"}},
        {"persistedQuery": {"version": 1}},
    ],
)
def test_malformed_persisted_query_is_a_400(extensions: dict[str, Any]) -> None:
    """A persistedQuery that is not {version: 1, sha256Hash: 64 hex digits} is a request error."""
    store = PersistedDocuments(persisted_only=False, maxsize=10)
    with pytest.raises(RequestError) as raised:
        store.resolve(op(DOC, extensions=extensions))
    assert (raised.value.status, raised.value.code) == (400, "BAD_USER_INPUT")


def test_document_id_and_hash_naming_different_documents_is_a_400() -> None:
    """documentId and persistedQuery must agree when both are sent."""
    store = PersistedDocuments({sha256_hex(DOC): DOC}, persisted_only=False, maxsize=10)
    with pytest.raises(RequestError):
        store.resolve(op(document_id=sha256_hex(DOC), digest=sha256_hex(OTHER)))


def test_a_caller_flooding_the_store_costs_another_a_reregistration_never_a_wrong_document() -> (
    None
):
    """One caller's flood evicts another's entry: that one registers again and runs its own text."""
    store = PersistedDocuments(persisted_only=False, maxsize=8)
    mine = sha256_hex(DOC)
    store.register(store.resolve(op(DOC, digest=mine)))
    for i in range(100):  # another caller registers documents of its own
        text = f"{{ flood{i}: callCount }}"
        store.register(store.resolve(op(text, digest=sha256_hex(text))))
    assert len(store) == 8
    with pytest.raises(PersistedQueryNotFoundError):
        store.resolve(op(digest=mine))
    store.register(store.resolve(op(DOC, digest=mine)))
    assert store.resolve(op(digest=mine)) == Resolved(DOC)
    # Nobody can file a document under another's hash.
    with pytest.raises(BadUserInputError):
        store.resolve(op("{ __schema { types { name } } }", digest=mine))
