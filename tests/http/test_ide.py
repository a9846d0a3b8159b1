"""Unit tests for the GraphiQL page and its packaged, integrity-checked assets."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import tomllib
from pathlib import Path

from gateway.http.ide import ASSETS, MANIFEST, check_assets, example_query, graphiql_page

ROOT = Path(__file__).resolve().parents[2]


def test_committed_assets_match_their_manifest() -> None:
    """Every file of gateway/http/ide_assets has the SHA-256 MANIFEST.json lists; none is extra."""
    assert check_assets(ASSETS) == []
    listed = json.loads((ASSETS / MANIFEST).read_text())
    assert {"graphiql.js", "graphiql.css", "workers/graphql.worker.js"} <= set(listed["sha256"])
    assert listed["packages"]["graphiql"].startswith("5.")
    assert "@graphiql/plugin-explorer" in listed["packages"]


def test_check_assets_reports_changed_missing_and_unlisted_files(tmp_path: Path) -> None:
    """A tampered, a deleted and an added file are each reported by name."""
    copy = tmp_path / "assets"
    shutil.copytree(ASSETS, copy)
    (copy / "graphiql.css").write_text("body { display: none }")
    (copy / "workers" / "json.worker.js").unlink()
    (copy / "extra.js").write_text("alert(1)")
    assert check_assets(copy) == [
        "missing: workers/json.worker.js",
        "not in the manifest: extra.js",
        "changed: graphiql.css",
    ]
    assert check_assets(tmp_path)[0].startswith(str(tmp_path / MANIFEST))


def test_package_data_takes_every_asset_into_the_wheel() -> None:
    """pyproject's package-data globs cover every asset file, those in subfolders too."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["gateway.http"]
    package = ROOT / "gateway" / "http"
    covered = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    assets = {path for path in ASSETS.rglob("*") if path.is_file()}
    assert assets - covered == set()
    assert any(path.parent != ASSETS for path in assets)  # fonts/, images/, workers/


def test_the_page_prefills_query_and_headers_without_inline_script() -> None:
    """The config travels as a JSON data block that cannot close its element; no code inline."""
    today = dt.date(2026, 3, 9)
    hostile = {"X-DeepCall-SSID": "</script><script>alert(1)</script>"}
    page = graphiql_page(today, "/graphql", hostile)
    blocks = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.DOTALL)
    assert [attrs for attrs, body in blocks if body] == [
        ' type="application/json" id="graphiql-config"'
    ]
    config = json.loads(blocks[-1][1])
    assert config["query"] == example_query(today)
    assert json.loads(config["headers"]) == hostile
    assert config["url"] == "/graphql"
    assert "<script>alert" not in page
