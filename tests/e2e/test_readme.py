"""The README's quick start, run as written against the real command line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CLI = str(Path(sys.executable).parent / "deepcall-gateway")
START_TIMEOUT = 30.0


def readme_block_containing(marker: str) -> str:
    """The body of the first ```sh block in the README that contains ``marker``."""
    for block in re.findall(r"```sh\n(.*?)```", README, re.DOTALL):
        if marker in block:
            return str(block)
    raise AssertionError(f"no sh block with {marker!r} in README.md")


@contextmanager
def running(
    args: list[str], ready_line: str, env: dict[str, str]
) -> Iterator[subprocess.Popen[str]]:
    """Run ``args``, wait until stderr or stdout shows ``ready_line``, stop it with SIGTERM."""
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
        cwd=ROOT,
    )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        for line in process.stdout:  # blocks on the process's own output, no polling
            seen.append(line)
            if ready_line in line:
                break
        else:
            raise AssertionError("process ended before it was ready:\n" + "".join(seen))
        process.output = seen  # type: ignore[attr-defined]
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=START_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()


def run_curl(block: str, port: int) -> dict[str, object]:
    """Run a README curl command against ``port`` and parse its JSON output."""
    command = block.replace("localhost:8000", f"127.0.0.1:{port}").replace(
        "localhost:8080", f"127.0.0.1:{port}"
    )
    output = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    result: dict[str, object] = json.loads(output)
    return result


@pytest.mark.slow
def test_readme_serve_and_curl_return_counts() -> None:
    """`deepcall-gateway serve` on the embedded default answers the README's two-alias curl."""
    assert "deepcall-gateway serve" in readme_block_containing("1. start the gateway")
    port = free_port()
    clean_env = {k: "" for k in os.environ if k.startswith("GATEWAY_")}
    with running(
        [CLI, "serve", "--port", str(port)],
        "Uvicorn running",
        {**clean_env, "GATEWAY_UPSTREAM_URL": "embedded"},
    ) as process:
        body = run_curl(readme_block_containing("localhost:8000/graphql"), port)
        startup = "".join(process.output)  # type: ignore[attr-defined]
    assert "DEMO DATA" in startup
    assert "demo-ssid-acme" in startup
    data = body["data"]
    assert isinstance(data, dict)
    assert set(data) == {"all", "answered"}
    assert data["all"] > data["answered"] > 0
    assert process.returncode == 0


@pytest.mark.slow
def test_readme_live_curl_streams_the_counts() -> None:
    """The README's `curl -N` subscription prints an SSE event with both counts at once."""
    port = free_port()
    clean_env = {k: "" for k in os.environ if k.startswith("GATEWAY_")}
    block = readme_block_containing("text/event-stream")
    assert "curl -sN" in block
    command = block.replace("localhost:8000", f"127.0.0.1:{port}")
    with running(
        [CLI, "serve", "--port", str(port)],
        "Uvicorn running",
        {**clean_env, "GATEWAY_UPSTREAM_URL": "embedded"},
    ):
        # A stream does not end by itself: curl gives up after 3 s (exit 28), its output kept.
        streamed = subprocess.run(
            ["bash", "-c", command.replace("curl -sN", "curl -sN --max-time 3")],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    assert streamed.returncode == 28, streamed.stderr
    lines = streamed.stdout.splitlines()
    assert lines[0] == "event: next"
    watch = json.loads(lines[1].removeprefix("data: "))["data"]["watch"]
    assert watch["all"] > watch["answered"] > 0


@pytest.mark.slow
def test_readme_simulate_and_curl_return_a_count() -> None:
    """`deepcall-gateway simulate` answers the README's direct curl with the documented shape."""
    port = free_port()
    with running([CLI, "simulate", "--port", str(port), "--calls", "5000"], "Uvicorn running", {}):
        body = run_curl(readme_block_containing("reportCount"), port)
    assert body["code"] == 200
    assert body["status"] == "success"
    assert isinstance(body["cnt"], int)
    assert body["cnt"] > 0


@pytest.mark.parametrize(
    ("env", "lines"),
    [
        (
            {"GATEWAY_CACHE_TTL": "soon", "GATEWAY_UPSTREAM_TZ": "Mars/Olympus"},
            [
                "GATEWAY_CACHE_TTL='soon' is invalid",
                "GATEWAY_UPSTREAM_TZ='Mars/Olympus' is invalid",
            ],
        ),
        (
            {"GATEWAY_ENV": "production"},
            ["GATEWAY_UPSTREAM_URL is not set and GATEWAY_ENV is production"],
        ),
    ],
)
def test_bad_settings_stop_startup_with_one_line_each(
    env: dict[str, str], lines: list[str]
) -> None:
    """Bad settings exit with status 2 and one clear line per problem, no traceback."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    result = subprocess.run(
        [CLI, "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env={**base, **env},
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    reported = result.stderr.strip().splitlines()
    assert len(reported) == len(lines)
    for line, expected in zip(reported, lines, strict=True):
        assert expected in line
