"""Command line: ``deepcall-gateway serve | simulate | export-schema``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import uvicorn

from gateway.api import schema_sdl
from gateway.config import SettingsError
from gateway.observe import configure_logging
from gateway.server.app import begin_drain, create_app
from gateway.server.runtime import (
    GracefulServer,
    bounded,
    run,
    run_workers,
    start_process,
    uvicorn_options,
)


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = start_process(os.environ)
    except SettingsError as exc:
        print(f"deepcall-gateway: {exc}", file=sys.stderr)
        return 2
    options = uvicorn_options(settings, args.host, args.port)
    if settings.workers > 1:
        # Several processes: uvicorn's own supervisor, each worker building its app
        # from the environment (see the docs for what they share).
        factory = "gateway.server.runtime:app_from_environ"
        config = uvicorn.Config(factory, factory=True, workers=settings.workers, **options)
        return run_workers(bounded(config, settings))
    app = create_app(settings)

    def not_ready() -> None:
        begin_drain(app)

    config = bounded(uvicorn.Config(app, **options), settings)
    return run(GracefulServer(config, drain_seconds=settings.drain_seconds, on_drain=not_ready))


def _simulate(args: argparse.Namespace) -> int:
    from gateway.simulator import Simulator, create_simulator_app

    configure_logging("INFO", "text")
    simulator = Simulator(seed=args.seed, calls=args.calls, path=args.db)
    print(simulator.describe_credentials(), flush=True)
    app = create_simulator_app(simulator)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_config=None)
    return run(GracefulServer(config))


def _export_schema(args: argparse.Namespace) -> int:
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
