"""The production image, built offline from the repository's Dockerfile and run as a platform would.

One build per module (tests/support/image.py says how): a bookworm base
from debootstrap, a wheelhouse filled by that base's Python, then the
Dockerfile's offline path in a network namespace with no route out. Each test
runs the image's own command (its CMD, its HEALTHCHECK) in a fresh container
of it, in that namespace, with the simulator served on the host.

The base is made afresh each session, never cached between runs: CI starts on
a fresh machine with nothing to reuse, and a kept base would silently go stale
(Debian's security updates, Python's patches) while the tests went on passing.
It costs about a minute.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx
import pytest
from support.image import (
    WHEELHOUSE_COMMAND,
    Buildah,
    Image,
    build_offline,
    copy_context,
    fill_wheelhouse,
    make_base,
    missing_tools,
)
from support.processes import WAIT, Network, Running, isolated_network, leftovers
from support.servers import run_simulator

from gateway.simulator import Simulator

ROOT = Path(__file__).resolve().parents[2]
BASE = "localhost/deepcall-test-base:bookworm"
NAME = "localhost/deepcall-gateway:test"
ACME_SSID = "demo-ssid-acme"
CAMPAIGNS = (123, 124, 125, 126)
"""acme's campaigns: four distinct upstream questions, so four calls in flight."""
UID = 10001
SCRATCH = "/tmp"  # noqa: S108 - the image's /tmp, the one place it may write
MB = 1_000_000

# The bound on what the Dockerfile adds to its base. Measured: 79 MB, the venv
# (pip and setuptools 25 MB, uvloop 14 MB, the gateway with GraphiQL's assets
# 8 MB, redis 7 MB, ...). 100 MB leaves about a quarter for dependencies to grow
# with their releases; a C toolchain (Debian's gcc-12 with cpp-12 installs
# 100 MB), or a heavyweight new dependency, goes over it and has to be argued for.
ADDED_LIMIT = 100 * MB
# The whole image: this base is 128 MB; 250 MB is the bound above plus room for
# Debian's updates to the base.
SIZE_LIMIT = 250 * MB

COMPILERS = {"cc", "c++", "gcc", "g++", "cpp", "cc1", "cc1plus", "clang", "clang++", "tcc", "as"}
"""Compiler, preprocessor and assembler names (also found as x86_64-linux-gnu-gcc-12 etc.)."""
BUILD_PACKAGE = re.compile(
    r"(gcc|g\+\+|cpp|clang|make)(-[0-9.]+)?|binutils.*|build-essential|.+-dev"
)
"""Debian packages of a toolchain (gcc-12-base, libgcc's, is not one: every image has it)."""
BUILDAH_EXIT_LINES = ("subprocess exited with status", "Error: exit status")
"""What ``buildah run`` itself adds to stderr when the command fails."""


def skip_reason() -> str | None:
    """Why the image cannot be built here, or ``None``."""
    missing = missing_tools()
    if missing:
        return (
            f"needs {', '.join(missing)} (apt-get install buildah debootstrap util-linux "
            "iproute2; .ci/run installs them)"
        )
    if os.geteuid() != 0:
        return "needs root: debootstrap, buildah's storage and a network namespace"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or ""),
]


@dataclass(frozen=True)
class Built:
    """The image, the wheelhouse it was built from, and what each step took."""

    image: Image
    wheels: list[str]
    seconds: dict[str, float]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("image")
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def buildah(workspace: Path) -> Iterator[Buildah]:
    """buildah on a storage of the module's; emptied at the end, with nothing left mounted."""
    tool = Buildah(workspace / "buildah")
    yield tool
    tool.remove_everything()
    assert leftovers(workspace) == []


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    with isolated_network() as isolated:
        yield isolated


@pytest.fixture(scope="module")
def built(buildah: Buildah, network: Network, workspace: Path) -> Built:
    """The repository's image, built offline on a bookworm base made here."""
    seconds: dict[str, float] = {}
    started = time.monotonic()
    base = make_base(buildah, workspace / "rootfs", BASE)
    seconds["base"] = time.monotonic() - started
    context = copy_context(ROOT, workspace / "context")
    started = time.monotonic()
    wheels = fill_wheelhouse(buildah, base, context)
    seconds["wheelhouse"] = time.monotonic() - started
    started = time.monotonic()
    image = build_offline(buildah, network, context, base, NAME)
    seconds["build"] = time.monotonic() - started
    return Built(image, wheels, seconds)


@pytest.fixture(scope="module")
def image(built: Built) -> Image:
    return built.image


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


@pytest.fixture(scope="module")
def upstream(sim: Simulator, network: Network) -> Iterator[str]:
    """The simulator's URL on the host's end of the veth pair, the one place the image reaches."""
    with run_simulator(sim, network.host) as url:
        yield url


@pytest.fixture
def container(buildah: Buildah, image: Image) -> Iterator[str]:
    """A fresh container of the image (``docker create``)."""
    name = buildah("from", "--pull=never", image.name)
    yield name
    buildah("rm", name)


@pytest.fixture
def run_in(buildah: Buildah, network: Network, container: str) -> Callable[..., list[str]]:
    """``run_in(*argv, env=)``: the command line that runs ``argv`` in the test's container."""

    def argv(*command: str, env: dict[str, str] | None = None) -> list[str]:
        options = [word for pair in (env or {}).items() for word in ("--env", "=".join(pair))]
        return network.enter(
            buildah.argv("run", "--isolation", "chroot", *options, container, "--", *command)
        )

    return argv


@pytest.fixture
def start(
    run_in: Callable[..., list[str]], image: Image, upstream: str
) -> Iterator[Callable[[], Running]]:
    """Start the image's CMD in front of the simulator; return it once it listens."""
    started: list[Running] = []

    def serving() -> Running:
        running = Running(run_in(*image.config["Cmd"], env={"GATEWAY_UPSTREAM_URL": upstream}))
        started.append(running)
        running.line_with("Uvicorn running on")
        return running

    yield serving
    for running in started:
        running.kill()


def gateway_url(network: Network) -> str:
    return f"http://{network.guest}:8000"


def test_the_build_had_no_route_out(network: Network) -> None:
    """The namespace the image is built and run in routes only to the host's end of its veth."""
    routes = subprocess.run(
        network.enter(["ip", "-o", "-4", "route"]), capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(routes) == 1, routes
    assert ipaddress.ip_address(network.host) in ipaddress.ip_network(routes[0].split()[0])


def test_the_docs_give_the_commands_this_module_builds_with() -> None:
    """The deployment docs give the wheelhouse command and the build argument used here."""
    docs = "\n".join(path.read_text() for path in [ROOT / "README.md", *ROOT.glob("docs/*.md")])
    assert WHEELHOUSE_COMMAND in docs
    assert "docker build --build-arg PIP_NO_INDEX=1 " in docs


def test_image_size_is_reported_and_bounded(
    built: Built, capsys: pytest.CaptureFixture[str], record_property: Callable[[str, object], None]
) -> None:
    """The image, and what the Dockerfile adds to its base, stay under their bounds."""
    image = built.image
    with capsys.disabled():
        print(
            f"\n{image.name}: {image.size / MB:.1f} MB, {image.added / MB:.1f} MB over its "
            f"{(image.size - image.added) / MB:.1f} MB base; "
            + ", ".join(f"{step} {took:.0f}s" for step, took in built.seconds.items())
        )
    record_property("image_bytes", image.size)
    record_property("image_added_bytes", image.added)
    assert 0 < image.added <= ADDED_LIMIT
    assert image.size <= SIZE_LIMIT


def test_serves_callcount_from_the_simulator_on_the_host(
    start: Callable[[], Running], network: Network, sim: Simulator
) -> None:
    """The image answers a callCount query with the count of the simulator it was pointed at."""
    start()
    sim.clear_requests()
    response = httpx.post(
        f"{gateway_url(network)}/graphql",
        json={"query": "{ callCount }"},
        headers={"X-DeepCall-SSID": ACME_SSID},
        timeout=WAIT,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"callCount": sim.count("acme")}}
    assert [request["ssid"] for request in sim.requests] == [ACME_SSID]
    health = httpx.get(f"{gateway_url(network)}/healthz", timeout=WAIT)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})


# Run by the image's own Python, as the image's user: what it can write, and what it may not.
PROBE = r"""
import json, os
skipped = {"/proc", "/sys", "/dev", "/tmp"}  # the runtime's, and /tmp's scratch contents
writable = [path for path in ["/", "/tmp"] if os.access(path, os.W_OK)]
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in skipped]
    for path in [os.path.join(top, name) for name in dirs + files]:
        if not os.path.islink(path) and os.access(path, os.W_OK):
            writable.append(path)
denied = []
for directory in ["/", "/etc", "/opt/venv/bin", "/opt/venv/lib/python3.11/site-packages/gateway",
                  "/var/tmp", "/root"]:
    try:
        open(os.path.join(directory, "probe"), "x").close()
    except PermissionError:
        denied.append(directory)
with open("/tmp/probe", "w") as scratch:
    scratch.write("ok")
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines())
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
                  "capabilities": int(status["CapEff"], 16), "writable": sorted(writable),
                  "denied": denied, "scratch": open("/tmp/probe").read()}))
"""


def test_runs_as_uid_10001_and_writes_only_to_tmp(
    start: Callable[[], Running], run_in: Callable[..., list[str]], image: Image
) -> None:
    """The serving process is uid 10001 with no capabilities, and only /tmp is writable to it."""
    running = start()
    pid = running.command_pid(image.config["Cmd"])
    status = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    assert status["Uid"].split() == [str(UID)] * 4
    assert status["Gid"].split() == [str(UID)] * 4
    assert int(status["CapEff"], 16) == 0

    probe = subprocess.run(
        run_in("python", "-c", PROBE), capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout) == {
        "uid": UID,
        "gid": UID,
        "groups": [UID],
        "capabilities": 0,
        "writable": [SCRATCH],
        "denied": [
            "/",
            "/etc",
            "/opt/venv/bin",
            "/opt/venv/lib/python3.11/site-packages/gateway",
            "/var/tmp",  # noqa: S108 - the image's, which it must not write to
            "/root",
        ],
        "scratch": "ok",
    }


def test_production_without_an_upstream_url_refuses_to_start_with_one_line(
    run_in: Callable[..., list[str]], image: Image
) -> None:
    """In the image's own environment (production, no upstream URL) its CMD exits 2, saying why."""
    env = image.env()
    assert env["GATEWAY_ENV"] == "production"
    assert "GATEWAY_UPSTREAM_URL" not in env
    result = subprocess.run(
        run_in(*image.config["Cmd"]), capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert result.returncode == 2
    assert result.stdout == ""
    said = [line for line in result.stderr.splitlines() if not line.startswith(BUILDAH_EXIT_LINES)]
    assert said == [
        "deepcall-gateway: GATEWAY_UPSTREAM_URL is not set and GATEWAY_ENV is production: "
        "set the upstream's base URL (or 'embedded' to serve demo data on purpose)"
    ]


def test_healthcheck_passes_while_the_gateway_serves_and_fails_without_it(
    start: Callable[[], Running], run_in: Callable[..., list[str]], image: Image
) -> None:
    """The HEALTHCHECK command fails with nothing listening, then passes within its timeout."""
    healthcheck = image.config["Healthcheck"]
    kind, *command = healthcheck["Test"]
    assert kind == "CMD"
    timeout = healthcheck["Timeout"] / 1e9

    def check() -> tuple[int, float, str]:
        began = time.monotonic()
        result = subprocess.run(
            run_in(*command), capture_output=True, text=True, timeout=WAIT, check=False
        )
        return result.returncode, time.monotonic() - began, result.stderr

    status, _, said = check()
    assert status != 0
    assert "Connection refused" in said
    start()
    status, took, said = check()
    assert status == 0, said
    assert took < timeout


def test_sigterm_answers_requests_in_flight_then_exits_0_within_the_shutdown_timeout(
    start: Callable[[], Running], network: Network, sim: Simulator, image: Image
) -> None:
    """SIGTERM to the CMD: new connections refused, requests in flight answered, exit 0 in time."""
    running = start()
    pid = running.command_pid(image.config["Cmd"])
    shutdown_timeout = float(image.env()["GATEWAY_SHUTDOWN_TIMEOUT"])
    expected = {campaign: sim.count("acme", {"campId": campaign}) for campaign in CAMPAIGNS}
    url = gateway_url(network)
    sim.faults.hang = True
    try:
        with ThreadPoolExecutor(len(CAMPAIGNS)) as pool:
            answers = {
                campaign: pool.submit(
                    httpx.post,
                    f"{url}/graphql",
                    json={"query": f"{{ callCount(filter: {{campaignId: {campaign}}}) }}"},
                    headers={"X-DeepCall-SSID": ACME_SSID},
                    timeout=WAIT,
                )
                for campaign in CAMPAIGNS
            }
            assert sim.faults.wait_hanging(len(CAMPAIGNS), WAIT)
            signalled = time.monotonic()
            os.kill(pid, signal.SIGTERM)
            running.line_with("Refusing new connections")
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{url}/healthz", timeout=WAIT)
            sim.release_held()
            responses = {campaign: answer.result(WAIT) for campaign, answer in answers.items()}
        status = running.wait(shutdown_timeout)
        took = time.monotonic() - signalled
    finally:
        sim.reset_faults()
    assert {campaign: response.json() for campaign, response in responses.items()} == {
        campaign: {"data": {"callCount": count}} for campaign, count in expected.items()
    }
    assert status == 0, running.output
    assert took < shutdown_timeout
    assert "Finished server process" in running.output


def test_image_holds_no_compiler_pip_cache_tests_or_git(
    buildah: Buildah, container: str, built: Built
) -> None:
    """The image holds the gateway and no compiler, pip cache, wheel, test file or .git."""
    mountpoint = Path(buildah("mount", container))
    try:
        paths = [
            "/" + str(Path(top, name).relative_to(mountpoint))
            for top, dirs, files in os.walk(mountpoint)
            for name in [*dirs, *files]
        ]
        status = (mountpoint / "var/lib/dpkg/status").read_text()
    finally:
        buildah("umount", container)
    assert "/opt/venv/bin/deepcall-gateway" in paths
    assert "/opt/venv/lib/python3.11/site-packages/gateway/__init__.py" in paths

    names = {PurePosixPath(path).name for path in paths}
    compilers = [
        path
        for path in paths
        if ("/bin/" in path or "/lib/gcc" in path)
        and PurePosixPath(path).name.rpartition("-linux-gnu-")[2].rsplit("-", 1)[0] in COMPILERS
    ]
    assert compilers == []
    packages = [
        line.removeprefix("Package: ")
        for line in status.splitlines()
        if line.startswith("Package: ")
    ]
    assert "libpython3.11-stdlib" in packages
    assert [package for package in packages if BUILD_PACKAGE.fullmatch(package)] == []

    assert [path for path in paths if ".cache" in PurePosixPath(path).parts] == []
    assert [path for path in paths if path.startswith(f"{SCRATCH}/")] == []
    assert sorted(names & set(built.wheels)) == []
    assert [path for path in paths if path in ("/src", "/wheelhouse")] == []

    ours = [
        f"/{path.relative_to(ROOT)}"
        for path in (ROOT / "tests").rglob("*.py")
        if "node_modules" not in path.parts and path.name != "__init__.py"
    ]
    assert len(ours) > 10
    assert [path for path in paths if any(path.endswith(test) for test in ours)] == []
    assert [path for path in paths if ".git" in PurePosixPath(path).parts] == []
