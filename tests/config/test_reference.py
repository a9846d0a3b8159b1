"""The settings reference in docs/ is generated from ``Settings`` and kept in step with it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gateway.config import Settings
from gateway.config.reference import GROUPS, field_docs, render

ROOT = Path(__file__).resolve().parents[2]


def test_the_checked_in_reference_matches_the_code() -> None:
    """docs/settings.md is the rendered reference (python -m gateway.config.reference)."""
    assert (ROOT / "docs" / "settings.md").read_text() == render()


def test_every_setting_is_documented_and_listed() -> None:
    """Each field has a docstring and a row of its own; the groups start at real fields."""
    names = [field.name for field in dataclasses.fields(Settings)]
    docs = field_docs()
    assert sorted(docs) == sorted(names)
    assert all(docs[name].endswith(".") for name in names)
    rendered = render()
    for name in names:
        assert rendered.count(f"| `GATEWAY_{name.upper()}` |") == 1
    assert set(GROUPS) <= set(names)


def test_defaults_are_shown_as_the_environment_spells_them() -> None:
    """Booleans lower case, whole floats without a fraction, empty values as none."""
    rendered = render()
    assert "| `GATEWAY_UPSTREAM_TIMEOUT` | `5` |" in rendered
    assert "| `GATEWAY_BREAKER_FAILURE_RATE` | `0.5` |" in rendered
    assert "| `GATEWAY_ALLOW_GET` | `false` |" in rendered
    assert "| `GATEWAY_REDIS_URL` | none |" in rendered
    assert "| `GATEWAY_UPSTREAM_URL` | `embedded` |" in rendered
