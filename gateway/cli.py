"""Command line: ``deepcall-gateway serve | simulate | export-schema``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence


def _run(app: object, host: str, port: int, **options: object) -> None:
    import uvicorn

    # uvicorn drains on SIGTERM/SIGINT, then re-raises the signal to whatever
    # handler was installed before it: make that a no-op, so a graceful stop
    # exits with status 0 (what Kubernetes and systemd expect), not 143.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.run(app, host=host, port=port, log_config=None, **options)  # type: ignore[arg-type]


def _serve(args: argparse.Namespace) -> int:
    from gateway.app import create_app
    from gateway.config import Settings, SettingsError

    try:
        settings = Settings.from_environ(os.environ)
    except SettingsError as exc:
        print(f"deepcall-gateway: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    _run(
        app,
        args.host,
        args.port,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from gateway.simulator import Simulator, create_simulator_app

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    simulator = Simulator(seed=args.seed, calls=args.calls, path=args.db)
    print(simulator.describe_credentials(), flush=True)
    _run(create_simulator_app(simulator), args.host, args.port)
    return 0


def _export_schema(args: argparse.Namespace) -> int:
    from gateway.schema import schema_sdl

    sys.stdout.write(schema_sdl())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="deepcall-gateway")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the GraphQL gateway")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(run=_serve)

    simulate = commands.add_parser("simulate", help="run the upstream simulator alone")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8080)
    simulate.add_argument("--seed", type=int, default=7)
    simulate.add_argument("--calls", type=int, default=60_000)
    simulate.add_argument("--db", default=":memory:", help="SQLite file (default: in memory)")
    simulate.set_defaults(run=_simulate)

    export = commands.add_parser("export-schema", help="print the GraphQL SDL")
    export.set_defaults(run=_export_schema)

    args = parser.parse_args(argv)
    status: int = args.run(args)
    return status
