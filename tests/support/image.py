"""The repository's image, built with buildah on a Debian base made here, and run.

The build is an air-gapped builder's: the base is a minbase bookworm from
debootstrap (``python:3.11-slim-bookworm`` cannot be pulled here), the
dependencies are wheels that the base's own Python fetches from PyPI, and the
Dockerfile's offline path installs them inside a network namespace with no
route out. Commands run with buildah's chroot isolation: there is no Docker
daemon, and crun refuses this machine's cgroups ("cgroups in hybrid mode not
supported"), which rules out ``podman run`` and buildah's OCI isolation.

Everything made here lives under one directory: buildah's storage and its mounts.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.processes import COMMAND_TIMEOUT, Network, checked

TOOLS = ("buildah", "debootstrap", "unshare", "nsenter", "ip")
"""Commands the image tests need: .ci/run installs buildah and debootstrap."""

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3")
"""What the Dockerfile asks of its base: ``python`` on PATH, and venv with pip."""
SLIMMED = (
    "dev",
    "usr/share/doc",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/man",
    "var/cache/apt/archives",
    "var/lib/apt/lists",
)
"""Left empty in the base, as Debian's slim images leave them (and /dev is the runtime's)."""

BUILD_TIMEOUT = 900.0
"""Seconds for debootstrap, the wheelhouse or the build: about a minute each here."""

WHEELHOUSE_COMMAND = "pip wheel --no-cache-dir --wheel-dir wheelhouse . setuptools"
"""The README's command for the offline build's wheels, run in the build context."""

CONTEXT_SKIPPED = (".venv", "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache")
"""Left out of the copied build context: local state too big to copy, never built from."""


def missing_tools() -> list[str]:
    """The commands of ``TOOLS`` that are not on PATH."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


@dataclass(frozen=True)
class Image:
    """A built image: its name, its Docker config and its layers' sizes."""

    name: str
    config: dict[str, Any]
    layers: list[int]
    """Uncompressed size of each layer, the base's first, in bytes."""
    base_layers: int

    @property
    def size(self) -> int:
        """Bytes of all the layers, uncompressed."""
        return sum(self.layers)

    @property
    def added(self) -> int:
        """Bytes of the layers the Dockerfile adds over its base."""
        return sum(self.layers[self.base_layers :])

    def env(self) -> dict[str, str]:
        """The image's environment."""
        return dict(pair.split("=", 1) for pair in self.config["Env"])


@dataclass(frozen=True)
class Buildah:
    """buildah with a storage under ``root``: nothing shared with the host's images."""

    root: Path

    def argv(self, *args: str) -> list[str]:
        """The command line for ``buildah args``."""
        storage = ["--root", str(self.root / "storage"), "--runroot", str(self.root / "run")]
        return ["buildah", *storage, "--storage-driver", "overlay", *args]

    def __call__(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Run ``buildah args``; its stdout. Fails with its output on a non-zero status."""
        return checked(self.argv(*args), timeout)

    def inspect(self, name: str, base: str) -> Image:
        """The image ``name``, built on ``base``."""

        def layers(image: str) -> list[int]:
            manifest = json.loads(self("inspect", "--type", "image", image))["Manifest"]
            return [layer["size"] for layer in json.loads(manifest)["layers"]]

        config = json.loads(self("inspect", "--type", "image", name))["Docker"]["config"]
        return Image(name, config, layers(name), len(layers(base)))

    def remove_everything(self) -> None:
        """Remove every container (unmounting it) and every image of this storage."""
        self("rm", "--all")
        self("rmi", "--all", "--force")


def make_base(buildah: Buildah, rootfs: Path, name: str) -> str:
    """A bookworm image with Python 3.11 from Debian's packages, named ``name``.

    debootstrap writes into a plain directory, so a failure leaves no mount in
    a container; the tree is then copied, ownership and modes kept, into a
    scratch container and committed.
    """
    packages = f"--include={','.join(BASE_PACKAGES)}"
    debootstrap = ["debootstrap", "--variant=minbase", packages, SUITE, str(rootfs), MIRROR]
    checked(debootstrap, BUILD_TIMEOUT)
    for path in SLIMMED:
        for entry in (rootfs / path).glob("*"):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    container = buildah("from", "scratch")
    mountpoint = buildah("mount", container)
    checked(["cp", "-a", f"{rootfs}/.", mountpoint], BUILD_TIMEOUT)
    buildah("umount", container)
    buildah("commit", "--quiet", "--rm", "--format", "docker", container, name)
    shutil.rmtree(rootfs)
    return name


def copy_context(root: Path, destination: Path) -> Path:
    """The repository's working tree as a build context: what ``docker build .`` would see.

    .git and tests/ come along, so that .dockerignore has something to keep out.
    """

    def skipped(directory: str, names: list[str]) -> list[str]:
        return [name for name in names if name in CONTEXT_SKIPPED]

    shutil.copytree(root, destination, symlinks=True, ignore=skipped)
    for wheel in (destination / "wheelhouse").glob("*.whl"):
        wheel.unlink()  # wheels made elsewhere, for another Python, stay out
    return destination


def host_ca_bundle() -> str:
    """The host's CA bundle: PyPI is reached through whatever this machine trusts."""
    paths = ssl.get_default_verify_paths()
    for candidate in (os.environ.get("PIP_CERT"), paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return candidate
    raise RuntimeError("no CA bundle on this host for pip to reach PyPI with")


def fill_wheelhouse(buildah: Buildah, base: str, context: Path) -> list[str]:
    """Run the README's wheelhouse command in ``context`` with ``base``'s own Python.

    The base's Python, not the host's: pip picks wheels and conditional
    dependencies by the interpreter (Debian's 3.11.2 needs async-timeout for
    redis; 3.11.3 and later do not). Returns the wheels' file names.
    """
    container = buildah("from", "--pull=never", base)
    ca = "/run/host-ca.crt"
    mounts = ["--volume", f"{context}:/src", "--volume", f"{host_ca_bundle()}:{ca}:ro"]
    env = [f"PIP_CERT={ca}", "PIP_DISABLE_PIP_VERSION_CHECK=1"] + [
        f"{name}={os.environ[name]}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy")
        if name in os.environ
    ]
    # Debian's python3 has no pip module (python:3.11-slim's has): a venv brings one.
    command = "python -m venv /tmp/pip && /tmp/pip/bin/" + WHEELHOUSE_COMMAND
    try:
        buildah(
            *["run", "--isolation", "chroot", "--workingdir", "/src"],
            *mounts,
            *[option for pair in env for option in ("--env", pair)],
            *[container, "--", "sh", "-c", command],
            timeout=BUILD_TIMEOUT,
        )
    finally:
        buildah("rm", container)
    return sorted(path.name for path in (context / "wheelhouse").glob("*.whl"))


def build_offline(buildah: Buildah, network: Network, context: Path, base: str, name: str) -> Image:
    """Build ``context``'s Dockerfile on ``base`` from its wheelhouse, with no way out."""
    # --format docker: an OCI image config has no HEALTHCHECK.
    options = "bud --isolation chroot --pull=never --format docker --build-arg PIP_NO_INDEX=1"
    arguments = [f"PYTHON_IMAGE={base}", "--tag", name, str(context)]
    checked(network.enter(buildah.argv(*options.split(), "--build-arg", *arguments)), BUILD_TIMEOUT)
    return buildah.inspect(name, base)
