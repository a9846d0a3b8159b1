"""The checked-in schema.graphql is what the code generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.api.schema import schema_sdl

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_schema_matches_the_code() -> None:
    """schema.graphql equals the exported SDL (regenerate: `deepcall-gateway export-schema`)."""
    assert (ROOT / "schema.graphql").read_text() == schema_sdl()


def test_export_schema_command_prints_the_sdl() -> None:
    """`python -m gateway export-schema` prints exactly the SDL."""
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "export-schema"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout == schema_sdl()


def test_every_description_names_its_upstream_key() -> None:
    """Each input field's description names the upstream key it maps to."""
    sdl = schema_sdl()
    for key in ("dtGte", "dtLte", "agtIds", "campId", "st", "filter", "priorityFilter", "cnt"):
        assert f"`{key}`" in sdl
