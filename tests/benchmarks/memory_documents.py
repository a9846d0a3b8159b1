"""Resident memory under a stream of unique documents: after 1,000 of them and after 100,000.

Run by run.py in a fresh interpreter. Documents go through the gateway's own
``Documents`` store, built as the served gateway builds it (default settings:
512 texts and 512 shapes remembered), one after the other: most are the
benchmark's inline misses (one alias or ten, a new campaignId in every alias,
so a new text each time, of a shape the store knows), and every twentieth is
of a shape never seen (new alias names), so it is parsed, validated in full and
remembered, pushing older shapes and texts out. Prints one JSON object.

    python tests/benchmarks/memory_documents.py [--documents 100000] [--early 1000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
from pathlib import Path

from gateway.api.schema import create_schema
from gateway.config import Settings
from gateway.documents import Documents

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
#: One document in this many is of a new shape.
NEW_SHAPE_EVERY = 50


def rss_bytes() -> int:
    """This process's resident set size."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE_SIZE


def document(n: int) -> str:
    """The ``n``-th document of the stream: a new text every time."""
    if n % NEW_SHAPE_EVERY == 0:
        fields = " ".join(f"n{n}x{i}: callCount(filter: {{campaignId: {i}}})" for i in range(10))
        return f"{{ {fields} }}"
    if n % 2:
        return f"{{ callCount(filter: {{campaignId: {n}}}) }}"
    fields = " ".join(f"a{i}: callCount(filter: {{campaignId: {n * 10 + i}}})" for i in range(10))
    return f"{{ {fields} }}"


def main() -> None:
    """Measure and print the resident set after ``--early`` and after ``--documents``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--early", type=int, default=1_000)
    args = parser.parse_args()
    settings = Settings()
    store = Documents.for_settings(create_schema()._schema, settings)
    early = 0
    for n in range(1, args.documents + 1):
        if store.prepare(document(n)).document is None:
            raise SystemExit(f"document {n} was refused: {document(n)[:200]}")
        if n == args.early:
            gc.collect()
            early = rss_bytes()
    gc.collect()
    late = rss_bytes()
    print(
        json.dumps(
            {
                "documents": args.documents,
                "early": args.early,
                "rss_early_mb": early / 2**20,
                "rss_late_mb": late / 2**20,
                "growth_mb": (late - early) / 2**20,
                "texts": len(store),
                "shapes": store.shapes,
            }
        )
    )


if __name__ == "__main__":
    main()
