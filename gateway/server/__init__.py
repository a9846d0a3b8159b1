"""The process: the Starlette app and its lifespan, the command line, a graceful stop."""

from gateway.server.app import create_app
from gateway.server.cli import main

__all__ = ["create_app", "main"]
