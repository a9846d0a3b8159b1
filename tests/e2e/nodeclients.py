"""Run the Node scripts of ``tests/e2e/clients/`` (unmodified npm clients) and read their JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

CLIENTS = Path(__file__).resolve().parent / "clients"
NODE = shutil.which("node")
#: Seconds a script may take on a loaded machine (they take about one).
TIMEOUT = 120

needs_node = pytest.mark.skipif(
    NODE is None or not (CLIENTS / "node_modules").is_dir(),
    reason="needs Node and `npm ci` in tests/e2e/clients (both done by .ci/run)",
)


def run_node(script: str, *args: str) -> Any:
    """Run ``clients/<script>`` with ``args``; its standard output parsed as JSON."""
    assert NODE is not None
    done = subprocess.run(
        [NODE, script, *args],
        cwd=CLIENTS,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
