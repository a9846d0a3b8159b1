"""Fetch GraphiQL's browser assets from the npm registry into ``gateway/ide_assets/``.

Standard library only, so it also runs in a container build stage that has
Python and npm but not the gateway's dependencies::

    python3 gateway/ide_fetch.py [DEST]      # or: deepcall-gateway fetch-ide

It runs ``npm pack`` for pinned versions (npm verifies the registry's
integrity hashes), extracts the few files the page needs, and writes
``MANIFEST.json`` with their SHA-256. The gateway then serves them under
``/graphql/ide/``, and no browser needs to reach a CDN.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

DEFAULT_DEST = Path(__file__).resolve().parent / "ide_assets"

#: npm package spec -> {path in its tarball: file name served}
PACKAGES: dict[str, dict[str, str]] = {
    "graphiql@3.8.3": {
        "package/graphiql.min.js": "graphiql.min.js",
        "package/graphiql.min.css": "graphiql.min.css",
    },
    "react@18.3.1": {"package/umd/react.production.min.js": "react.production.min.js"},
    "react-dom@18.3.1": {"package/umd/react-dom.production.min.js": "react-dom.production.min.js"},
}


def fetch(dest: Path = DEFAULT_DEST, npm: str = "npm") -> dict[str, str]:
    """Download and unpack the assets into ``dest``; returns {file: sha256}."""
    dest.mkdir(parents=True, exist_ok=True)
    digests: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(  # noqa: S603 (fixed arguments; npm verifies integrity)
            [npm, "pack", "--silent", "--pack-destination", scratch, *PACKAGES],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tarballs = sorted(Path(scratch).glob("*.tgz"))
        for spec, members in PACKAGES.items():
            name, version = spec.rsplit("@", 1)
            tarball = next(t for t in tarballs if t.name == f"{name}-{version}.tgz")
            with tarfile.open(tarball) as archive:
                for member, target in members.items():
                    source = archive.extractfile(member)
                    if source is None:
                        raise FileNotFoundError(f"{member} not in {tarball.name}")
                    with source, (dest / target).open("wb") as out:
                        shutil.copyfileobj(source, out)
                    digests[target] = hashlib.sha256((dest / target).read_bytes()).hexdigest()
    manifest = {"packages": list(PACKAGES), "sha256": digests}
    (dest / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return digests


def main(argv: list[str]) -> int:
    """Fetch into the folder named in ``argv`` (default: gateway/ide_assets)."""
    dest = Path(argv[0]) if argv else DEFAULT_DEST
    for name, digest in fetch(dest).items():
        print(f"{digest[:16]}  {dest / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
