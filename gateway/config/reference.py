"""The settings reference (``docs/settings.md``), generated from ``Settings`` itself.

Each field's docstring is its meaning; a test fails when the checked-in file
differs. Regenerate with ``python -m gateway.config.reference > docs/settings.md``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import sys
from typing import Any, Final

from gateway.config.settings import Settings

#: The first field of each group, and the group's heading.
GROUPS: Final = {
    "upstream_url": "The upstream",
    "breaker_failure_rate": "Circuit breaker",
    "cache_ttl": "Cache",
    "rate_limit": "Limits towards the upstream",
    "max_aliases": "Documents and requests",
    "allow_get": "HTTP surface",
    "live_min_every": "Live counts (subscriptions)",
    "log_level": "Process",
}

#: Defaults that follow another setting, as the reference states them.
DERIVED: Final = {"live_poll_rate": "half of `GATEWAY_RATE_LIMIT`"}

_HEAD: Final = """\
# Settings

Every setting is a field of `gateway.config.Settings`, read from the
environment as `GATEWAY_<FIELD>`. A bad value stops start-up with one line per
problem. This file is generated from the code
(`python -m gateway.config.reference > docs/settings.md`); a test fails when it
drifts.
"""


def field_docs(cls: type = Settings) -> dict[str, str]:
    """Each field's docstring (the string right after it in the class body), on one line."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = " ".join(inspect.cleandoc(following.value.value).split())
    return docs


def shown(value: Any) -> str:
    """A default as the environment would spell it."""
    if value is None or value in ("", ()):
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def render() -> str:
    """The whole reference, as Markdown."""
    docs = field_docs()
    lines = [_HEAD.rstrip()]
    for field in dataclasses.fields(Settings):
        group = GROUPS.get(field.name)
        if group is not None:
            lines += ["", f"## {group}", "", "| variable | default | meaning |", "|---|---|---|"]
        meaning = docs.get(field.name, "").replace("|", "\\|")
        default = DERIVED.get(field.name) or shown(field.default)
        lines.append(f"| `GATEWAY_{field.name.upper()}` | {default} | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
