"""Persisted-document manifests: the file ``GATEWAY_PERSISTED_DOCUMENTS`` names, read and checked.

Two formats: Apollo's persisted-query manifest, and the ``{id: document}`` map
GraphQL Codegen and Relay write. Ids lose any ``sha256:`` prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import orjson

APOLLO_MANIFEST: Final = "apollo-persisted-query-manifest"


def bare_id(document_id: str) -> str:
    """``document_id`` without the ``sha256:`` prefix some tools write."""
    return document_id.removeprefix("sha256:")


def load_manifest(path: str | Path) -> dict[str, str]:
    """The documents of a persisted-documents file by id; ValueError says what is wrong."""
    try:
        payload = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read it ({exc.strerror or exc})") from None
    except orjson.JSONDecodeError:
        raise ValueError("it is not JSON") from None
    if isinstance(payload, dict) and "format" in payload:
        documents = _apollo_operations(payload)
    elif isinstance(payload, dict) and all(
        isinstance(key, str) and isinstance(body, str) for key, body in payload.items()
    ):
        documents = list(payload.items())
    else:
        raise ValueError(
            f"expected an {APOLLO_MANIFEST} or a JSON object of id: document, as GraphQL "
            "Codegen and Relay write"
        )
    listed = {bare_id(key): body for key, body in documents if body.strip()}
    if not listed:
        raise ValueError("it lists no documents")
    return listed


def _apollo_operations(payload: dict[str, Any]) -> list[tuple[str, str]]:
    if payload.get("format") != APOLLO_MANIFEST or payload.get("version") != 1:
        raise ValueError(f'expected "format": "{APOLLO_MANIFEST}", "version": 1')
    operations = payload.get("operations")
    if not isinstance(operations, list):
        raise ValueError('"operations" must be a list')
    found = []
    for index, entry in enumerate(operations):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("id"), str)
            and isinstance(entry.get("body"), str)
        ):
            raise ValueError(f"operation {index} needs a string id and a string body")
        found.append((entry["id"], entry["body"]))
    return found
