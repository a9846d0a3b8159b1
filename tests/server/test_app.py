"""The app starts on every setting alone, at the ends of its range: no setting needs another."""

from __future__ import annotations

import httpx
import pytest

from gateway.config import Settings
from gateway.config.settings import RANGES
from gateway.server import create_app

ENDS = [
    (name, value)
    for name, (low, high) in sorted(RANGES.items())
    for value in (low, high)
    if name != "workers"  # start-up of several processes is the command line's (test_deploy)
]


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"code": 200, "status": "success", "cnt": 3})


@pytest.mark.parametrize(("name", "value"), ENDS, ids=[f"{n}={v:g}" for n, v in ENDS])
async def test_every_setting_alone_at_either_end_of_its_range_starts(
    name: str, value: float
) -> None:
    """GATEWAY_<NAME> alone, at its lowest and its highest: settings read, the app serves."""
    written = str(int(value)) if float(value).is_integer() else str(value)
    settings = Settings.from_environ({f"GATEWAY_{name.upper()}": written})
    app = create_app(settings, transport=httpx.MockTransport(_answer))

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            response = await client.post(
                "/graphql",
                json={"query": "{ callCount }"},
                headers={"X-DeepCall-SSID": "s"},
            )

    assert getattr(settings, name) == value
    assert response.json() == {"data": {"callCount": 3}}


async def test_the_demo_data_warning_names_the_setting_as_it_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """GATEWAY_UPSTREAM_URL=embedded, set or not: the warning says embedded, never "not set"."""
    settings = Settings.from_environ({"GATEWAY_UPSTREAM_URL": "embedded"})
    app = create_app(settings)
    caplog.set_level("WARNING", logger="gateway")

    async with app.router.lifespan_context(app):
        pass

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("DEMO DATA" in w and "GATEWAY_UPSTREAM_URL=embedded" in w for w in warnings)
    assert not any("not set" in w for w in warnings)
