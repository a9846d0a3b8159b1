"""GATEWAY_UPSTREAM_PROXY through a real forward proxy (tinyproxy), over http and https.

The upstream is the simulator over loopback, behind a recorder that notes each
request's peer address and headers: tinyproxy connects out from
``OUTBOUND_ADDRESS``, so a call that came through it is known as such even
inside a ``CONNECT`` tunnel, where no ``Via`` header can be added. For https the
simulator is served by uvicorn with a certificate from a throwaway CA that the
gateway trusts through ``GATEWAY_UPSTREAM_CA_FILE``.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from conftest import ACME, Gateway, headers_for
from starlette.types import ASGIApp, Receive, Scope, Send
from support.proxy import OUTBOUND_ADDRESS, VIA_NAME, run_tinyproxy
from support.servers import run_app
from support.simulator import expected_count

from gateway.config import Settings
from gateway.observe.logs import JsonFormatter
from gateway.server import create_app
from gateway.simulator import Simulator, create_simulator_app

TWO_COUNTS = (
    "{ a: callCount(filter: {campaignId: 1})"
    ' b: callCount(filter: {statuses: ["answered"], campaignId: 2}) }'
)
PROXY_USER = "egress-user-5d1f"
PROXY_PASSWORD = "egress-pw-0b7e93"


@dataclass(frozen=True)
class Seen:
    """One request as it reached the upstream."""

    peer: str
    port: int
    scheme: str
    headers: dict[str, str]


class Recorder:
    """ASGI middleware in front of the simulator: every request's peer, scheme and headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host, port = scope["client"]
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        self.seen.append(Seen(host, port, scope["scheme"], headers))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


@dataclass
class Upstream:
    """The recorded simulator, served at ``url``."""

    url: str
    recorder: Recorder
    ca_file: str = ""


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as owned:
        yield owned


def serve_upstream(
    sim: Simulator,
    stack: ExitStack,
    tmp_path: Path,
    authority: trustme.CA | None = None,
    name: str = "localhost",
) -> Upstream:
    """The simulator behind a Recorder, over http, or over https with a cert for ``name``."""
    recorder = Recorder(create_simulator_app(sim))
    if authority is None:
        return Upstream(stack.enter_context(run_app(recorder)), recorder)
    chain = tmp_path / f"{name}.pem"
    authority.issue_cert(name).private_key_and_cert_chain_pem.write_to_path(str(chain))
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    url = stack.enter_context(run_app(recorder, ssl_certfile=str(chain)))
    # Ask for it by name: the gateway checks the certificate against the URL's host.
    return Upstream(url.replace("127.0.0.1", "localhost"), recorder, str(ca_file))


def serve_gateway(stack: ExitStack, environ: dict[str, str]) -> tuple[Gateway, Settings]:
    """A gateway from ``environ`` as start-up reads it, served over loopback."""
    settings = Settings.from_environ(environ)
    url = stack.enter_context(run_app(create_app(settings)))
    client = stack.enter_context(httpx.Client(timeout=30))
    return Gateway(url, client), settings


def proxied(upstream: Upstream, proxy_url: str, **extra: str) -> dict[str, str]:
    """The environment of a gateway that reaches ``upstream`` through ``proxy_url``."""
    environ = {"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_UPSTREAM_PROXY": proxy_url}
    if upstream.ca_file:
        environ["GATEWAY_UPSTREAM_CA_FILE"] = upstream.ca_file
    return environ | extra


def expected_two_counts(sim: Simulator) -> dict[str, int]:
    calls = sim.calls()
    return {
        "a": expected_count(calls, ACME.account, {"campId": 1}),
        "b": expected_count(calls, ACME.account, {"campId": 2, "st": ["answered"]}),
    }


def timed_count(gateway: Gateway) -> tuple[dict[str, Any], float]:
    """One ``{ callCount }`` for ACME, and the seconds it took."""
    started = time.monotonic()
    body = gateway.query("{ callCount }", headers_for(ACME))
    return body, time.monotonic() - started


def first_error(body: dict[str, Any]) -> dict[str, Any]:
    errors = body["errors"]
    assert errors, body
    extensions: dict[str, Any] = errors[0]["extensions"]
    return extensions


def test_http_upstream_is_called_in_absolute_form_through_the_proxy(
    sim: Simulator, stack: ExitStack, tmp_path: Path
) -> None:
    """Over http each call goes to the proxy as POST http://…, arrives with its Via, and counts."""
    upstream = serve_upstream(sim, stack, tmp_path)
    proxy = stack.enter_context(run_tinyproxy(tmp_path))
    gateway, _ = serve_gateway(stack, proxied(upstream, proxy.url))

    body = gateway.query(TWO_COUNTS, headers_for(ACME))

    assert body == {"data": expected_two_counts(sim)}
    assert len(upstream.recorder.seen) == 2 == sim.request_count
    for seen in upstream.recorder.seen:
        assert seen.peer == OUTBOUND_ADDRESS
        assert VIA_NAME in seen.headers["via"]
        assert "proxy-authorization" not in seen.headers
    target = f"POST {upstream.url}/api/v2/CallReport/reportCount HTTP/1.1"
    assert proxy.request_lines() == [target, target]


class ClosingProxy(socketserver.ThreadingTCPServer):
    """A forward proxy (and upstream) that answers the first request on each connection
    and closes the connection, unannounced, when a second one arrives on it: the race of
    a proxy closing a kept-alive connection just as the client reuses it, every time."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ClosingHandler)
        self.request_lines: list[str] = []
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ClosingHandler(socketserver.StreamRequestHandler):
    server: ClosingProxy

    def handle(self) -> None:
        self.server.connections += 1
        for answered in (False, True):
            head = []
            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                head.append(line.decode("latin-1").strip())
            if not head:
                return
            self.server.request_lines.append(head[0])
            length = next(
                int(h.split(":")[1]) for h in head if h.lower().startswith("content-length")
            )
            self.rfile.read(length)
            if answered:
                return  # close, unannounced, without answering the second request
            body = b'{"code":200,"status":"success","cnt":7}'
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nVia: 1.1 closing\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            self.wfile.flush()


def test_a_connection_the_proxy_closes_as_it_is_reused_costs_no_failure(
    stack: ExitStack,
) -> None:
    """A kept-alive proxy connection closed as it is reused is sent once more on a new one:
    with no retries to hide a failure, every call succeeds."""
    proxy = stack.enter_context(ClosingProxy())
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    stack.callback(proxy.shutdown)
    environ = {
        "GATEWAY_UPSTREAM_URL": "http://upstream.test",
        "GATEWAY_UPSTREAM_PROXY": proxy.url,
        "GATEWAY_UPSTREAM_RETRIES": "0",
        # One connection (and so one upstream slot: slots may not outnumber connections).
        "GATEWAY_UPSTREAM_MAX_CONNECTIONS": "1",
        "GATEWAY_UPSTREAM_CONCURRENCY": "1",
        "GATEWAY_UPSTREAM_CALLER_CONCURRENCY": "1",
    }
    gateway, _ = serve_gateway(stack, environ)

    for campaign in (1, 2, 3):
        query = f"{{ n: callCount(filter: {{campaignId: {campaign}}}) }}"
        assert gateway.query(query, headers_for(ACME)) == {"data": {"n": 7}}

    target = "POST http://upstream.test/api/v2/CallReport/reportCount HTTP/1.1"
    # Calls 2 and 3 each met the close on the kept connection and went again on a new one.
    assert proxy.request_lines == [target] * 5
    assert proxy.connections == 3


def test_https_upstream_is_reached_through_one_kept_connect_tunnel(
    sim: Simulator, stack: ExitStack, tmp_path: Path, authority: trustme.CA
) -> None:
    """Over https calls go through CONNECT, TLS inside it; a kept-alive tunnel carries them all."""
    upstream = serve_upstream(sim, stack, tmp_path, authority)
    proxy = stack.enter_context(run_tinyproxy(tmp_path))
    gateway, _ = serve_gateway(stack, proxied(upstream, proxy.url))
    expected = expected_two_counts(sim)

    for campaign in (1, 2, 3):
        query = f"{{ n: callCount(filter: {{campaignId: {campaign}}}) }}"
        body = gateway.query(query, headers_for(ACME))
        count = expected_count(sim.calls(), ACME.account, {"campId": campaign})
        assert body == {"data": {"n": count}}
    assert gateway.query(TWO_COUNTS, headers_for(ACME))["data"]["b"] == expected["b"]

    seen = upstream.recorder.seen
    assert len(seen) == 4 == sim.request_count
    assert {(s.peer, s.scheme) for s in seen} == {(OUTBOUND_ADDRESS, "https")}
    # Inside the tunnel the proxy sees only ciphertext: it cannot add a Via header.
    assert all("via" not in s.headers for s in seen)
    port = upstream.url.rsplit(":", 1)[1]
    # Sequential calls: one tunnel, one TLS connection, reused for every call.
    assert proxy.request_lines() == [f"CONNECT localhost:{port} HTTP/1.1"]
    assert len({s.port for s in seen}) == 1


def test_the_tunnel_checks_the_certificate_against_the_upstreams_name(
    sim: Simulator, stack: ExitStack, tmp_path: Path, authority: trustme.CA
) -> None:
    """A certificate for another name, though from a trusted CA, is refused inside the tunnel."""
    upstream = serve_upstream(sim, stack, tmp_path, authority, name="someone-else.example")
    proxy = stack.enter_context(run_tinyproxy(tmp_path))
    gateway, _ = serve_gateway(stack, proxied(upstream, proxy.url, GATEWAY_UPSTREAM_RETRIES="0"))

    body = gateway.query("{ callCount }", headers_for(ACME))

    assert body["data"] == {"callCount": None}
    assert first_error(body)["code"] == "UPSTREAM_UNAVAILABLE"
    assert len(proxy.request_lines()) == 1  # the tunnel was opened
    assert sim.request_count == 0  # and nothing was sent through it


def test_the_pools_limits_hold_through_the_proxy(
    sim: Simulator, stack: ExitStack, tmp_path: Path, authority: trustme.CA
) -> None:
    """With a pool of 2, six concurrent calls share two tunnels and never exceed two at once."""
    upstream = serve_upstream(sim, stack, tmp_path, authority)
    proxy = stack.enter_context(run_tinyproxy(tmp_path))
    # Upstream slots may not outnumber connections: 2 of each.
    environ = proxied(
        upstream,
        proxy.url,
        GATEWAY_UPSTREAM_MAX_CONNECTIONS="2",
        GATEWAY_UPSTREAM_CONCURRENCY="2",
        GATEWAY_UPSTREAM_CALLER_CONCURRENCY="2",
    )
    gateway, _ = serve_gateway(stack, environ)
    sim.faults.latency = 0.2
    fields = " ".join(f"c{i}: callCount(filter: {{campaignId: {i}}})" for i in range(6))

    body = gateway.query(f"{{ {fields} }}", headers_for(ACME))

    calls = sim.calls()
    assert body == {
        "data": {f"c{i}": expected_count(calls, ACME.account, {"campId": i}) for i in range(6)}
    }
    assert sim.request_count == 6
    assert upstream.recorder.most_in_flight == 2
    assert len(proxy.request_lines()) == 2
    assert len({s.port for s in upstream.recorder.seen}) == 2


def test_a_dead_proxy_is_upstream_unavailable_within_the_tries_timeout(
    sim: Simulator, stack: ExitStack, tmp_path: Path, closed_port: int
) -> None:
    """A proxy that is not listening gives UPSTREAM_UNAVAILABLE (retryable), at once."""
    upstream = serve_upstream(sim, stack, tmp_path)
    environ = proxied(
        upstream,
        f"http://127.0.0.1:{closed_port}",
        GATEWAY_UPSTREAM_TIMEOUT="2",
        GATEWAY_UPSTREAM_RETRIES="0",
    )
    gateway, settings = serve_gateway(stack, environ)

    body, elapsed = timed_count(gateway)

    assert body["data"] == {"callCount": None}
    extensions = first_error(body)
    assert (extensions["code"], extensions["retryable"]) == ("UPSTREAM_UNAVAILABLE", True)
    assert elapsed < settings.upstream_timeout
    assert sim.request_count == 0


def test_a_proxy_that_never_answers_times_out_within_the_tries_timeout(
    sim: Simulator, stack: ExitStack, tmp_path: Path, authority: trustme.CA
) -> None:
    """A proxy that accepts the connection and never answers CONNECT costs one try's timeout."""
    upstream = serve_upstream(sim, stack, tmp_path, authority)
    silent = stack.enter_context(socket.socket())
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes handshakes; nobody ever reads
    environ = proxied(
        upstream,
        f"http://127.0.0.1:{silent.getsockname()[1]}",
        GATEWAY_UPSTREAM_TIMEOUT="0.5",
        GATEWAY_UPSTREAM_RETRIES="0",
    )
    gateway, _ = serve_gateway(stack, environ)

    body, elapsed = timed_count(gateway)

    assert first_error(body)["code"] == "UPSTREAM_TIMEOUT"
    assert 0.5 <= elapsed < 0.5 + 3.0  # generous: a loaded machine answers late
    assert sim.request_count == 0


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_proxy_that_refuses_is_upstream_unavailable(
    scheme: str,
    sim: Simulator,
    stack: ExitStack,
    tmp_path: Path,
    authority: trustme.CA,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Wrong proxy credentials are refused by the proxy: UPSTREAM_UNAVAILABLE, and a warning."""
    caplog.set_level(logging.WARNING, logger="gateway.egress")
    upstream = serve_upstream(sim, stack, tmp_path, authority if scheme == "https" else None)
    proxy = stack.enter_context(run_tinyproxy(tmp_path, auth=(PROXY_USER, PROXY_PASSWORD)))
    environ = proxied(
        upstream, proxy.url_with(PROXY_USER, "not-the-password"), GATEWAY_UPSTREAM_RETRIES="0"
    )
    gateway, _ = serve_gateway(stack, environ)

    body = gateway.query("{ callCount }", headers_for(ACME))

    assert first_error(body)["code"] == "UPSTREAM_UNAVAILABLE"
    assert sim.request_count == 0
    assert len(proxy.request_lines()) == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "gateway.egress"]
    # tinyproxy answers bad credentials with 401 (a 407 from other proxies).
    assert warnings == [f"the forward proxy 127.0.0.1:{proxy.port} refused: 401 Unauthorized"]


def test_an_http_upstream_the_proxy_cannot_reach_is_upstream_unavailable(
    sim: Simulator, stack: ExitStack, tmp_path: Path, closed_port: int
) -> None:
    """The proxy's own "500 Unable to connect" (no Via) is the upstream unreachable, as direct."""
    proxy = stack.enter_context(run_tinyproxy(tmp_path))
    environ = {
        "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{closed_port}",
        "GATEWAY_UPSTREAM_PROXY": proxy.url,
        "GATEWAY_UPSTREAM_RETRIES": "0",
    }
    gateway, _ = serve_gateway(stack, environ)

    body = gateway.query("{ callCount }", headers_for(ACME))

    extensions = first_error(body)
    assert (extensions["code"], extensions["retryable"]) == ("UPSTREAM_UNAVAILABLE", True)
    assert len(proxy.request_lines()) == 1


def test_the_upstreams_own_failure_status_is_still_a_bad_response_through_the_proxy(
    sim: Simulator, stack: ExitStack, tmp_path: Path
) -> None:
    """An upstream HTTP 503 comes with the proxy's Via: UPSTREAM_BAD_RESPONSE, as direct."""
    upstream = serve_upstream(sim, stack, tmp_path)
    proxy = stack.enter_context(run_tinyproxy(tmp_path))
    gateway, _ = serve_gateway(stack, proxied(upstream, proxy.url))
    sim.faults.http_status = 503

    body = gateway.query("{ callCount }", headers_for(ACME))

    assert first_error(body)["code"] == "UPSTREAM_BAD_RESPONSE"
    assert sim.request_count == 1


def test_a_connect_to_a_port_the_proxy_forbids_is_upstream_unavailable(
    sim: Simulator, stack: ExitStack, tmp_path: Path, authority: trustme.CA
) -> None:
    """A proxy that allows CONNECT to port 443 only refuses the tunnel: UPSTREAM_UNAVAILABLE."""
    upstream = serve_upstream(sim, stack, tmp_path, authority)
    proxy = stack.enter_context(run_tinyproxy(tmp_path, connect_ports=[443]))
    gateway, _ = serve_gateway(stack, proxied(upstream, proxy.url, GATEWAY_UPSTREAM_RETRIES="0"))

    body = gateway.query("{ callCount }", headers_for(ACME))

    assert first_error(body)["code"] == "UPSTREAM_UNAVAILABLE"
    assert sim.request_count == 0


def test_proxy_credentials_work_and_appear_nowhere(
    sim: Simulator,
    stack: ExitStack,
    tmp_path: Path,
    authority: trustme.CA,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With BasicAuth, calls over http and https succeed; no log, metric or answer names them."""
    caplog.set_level(logging.DEBUG)  # every logger, httpx's and httpcore's included
    proxy = stack.enter_context(run_tinyproxy(tmp_path, auth=(PROXY_USER, PROXY_PASSWORD)))
    proxy_url = proxy.url_with(PROXY_USER, PROXY_PASSWORD)
    answers: list[str] = []
    exposed: list[str] = []
    for upstream in (
        serve_upstream(sim, stack, tmp_path),
        serve_upstream(sim, stack, tmp_path, authority),
    ):
        gateway, settings = serve_gateway(stack, proxied(upstream, proxy_url))
        good = gateway.post(TWO_COUNTS, headers_for(ACME))
        assert good.json() == {"data": expected_two_counts(sim)}
        sim.faults.error_code = 1010  # an upstream failure, through the proxy
        failed = gateway.post("{ callCount(filter: {campaignId: 9}) }", headers_for(ACME))
        assert first_error(failed.json())["code"] == "UPSTREAM_UNAVAILABLE"
        sim.faults.reset()
        assert all("proxy-authorization" not in s.headers for s in upstream.recorder.seen)
        answers += [good.text, failed.text, *good.headers.values(), *failed.headers.values()]
        exposed += [gateway.client.get(f"{gateway.url}/metrics").text, repr(settings)]
        exposed.append(str(settings))

    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert any(f"forward proxy at 127.0.0.1:{proxy.port}" in line for line in lines), lines
    for text in [*answers, *exposed, *lines, caplog.text]:
        assert PROXY_PASSWORD not in text
        assert PROXY_USER not in text
    assert json.loads(answers[0])["data"]  # the texts searched are the real answers


def test_a_gateway_without_a_proxy_calls_https_directly_with_the_ca_file(
    sim: Simulator, stack: ExitStack, tmp_path: Path, authority: trustme.CA
) -> None:
    """GATEWAY_UPSTREAM_CA_FILE alone: our own pool trusts that CA and calls the upstream itself."""
    upstream_owner = stack.enter_context(ExitStack())
    upstream = serve_upstream(sim, upstream_owner, tmp_path, authority)
    environ = {"GATEWAY_UPSTREAM_URL": upstream.url, "GATEWAY_UPSTREAM_CA_FILE": upstream.ca_file}
    gateway, _ = serve_gateway(stack, environ)
    # The upstream stops first and closes the idle TLS connections itself: the pool's
    # aclose() does not wait for a TLS goodbye, which the gateway's loop, ending right
    # after, would leave unfinished (an unclosed-transport warning).
    stack.callback(upstream_owner.close)

    assert gateway.query(TWO_COUNTS, headers_for(ACME)) == {"data": expected_two_counts(sim)}
    assert {(s.peer, s.scheme) for s in upstream.recorder.seen} == {("127.0.0.1", "https")}


def test_without_the_ca_file_the_test_certificate_is_not_trusted(
    sim: Simulator, stack: ExitStack, tmp_path: Path, authority: trustme.CA
) -> None:
    """With certifi's roots only, the throwaway CA's certificate is refused: no call is made."""
    upstream = serve_upstream(sim, stack, tmp_path, authority)
    proxy = stack.enter_context(run_tinyproxy(tmp_path))
    environ = {
        "GATEWAY_UPSTREAM_URL": upstream.url,
        "GATEWAY_UPSTREAM_PROXY": proxy.url,
        "GATEWAY_UPSTREAM_RETRIES": "0",
    }
    gateway, _ = serve_gateway(stack, environ)

    body = gateway.query("{ callCount }", headers_for(ACME))

    assert first_error(body)["code"] == "UPSTREAM_UNAVAILABLE"
    assert sim.request_count == 0
