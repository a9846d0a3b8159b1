"""The shortcut reads a request's headers exactly as Starlette's ``Headers`` would."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers

from gateway.http.shortcut import RawHeaders

NAMES = ["x-deepcall-ssid", "x-deepcall-user-id", "x-forwarded-for", "accept", "origin"]
name = st.sampled_from(NAMES)
value = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=8)
lines = st.lists(st.tuples(name, value), max_size=8)


@given(lines, st.sampled_from([*NAMES, "X-DeepCall-SSID", "X-Forwarded-For", "ACCEPT", "absent"]))
def test_raw_headers_read_every_name_as_starlette_does(
    found: list[tuple[str, str]], key: str
) -> None:
    """For lowercased lines (as uvicorn gives them), duplicates included, ``get``, ``getlist``
    and ``in`` answer what Starlette's Headers answer, for any case of the name."""
    raw = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in found]
    ours, theirs = RawHeaders(raw), Headers(raw=raw)

    assert ours.get(key) == theirs.get(key)
    assert ours.get(key, "default") == theirs.get(key, "default")
    assert ours.getlist(key) == theirs.getlist(key)
    assert (key in ours) == (key in theirs)
    assert list(ours) == list(dict.fromkeys(theirs.keys()))
    assert len(ours) == len(set(theirs.keys()))
