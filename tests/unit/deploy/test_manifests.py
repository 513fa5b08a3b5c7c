"""deploy/kustomize renders, every object is valid by its schema, and every pod is locked down.

Rendered with kubectl's kustomize (skipped, saying why, without kubectl); the files as written are checked
against the same schemas either way.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.manifests import (
    CHART,
    KUSTOMIZE,
    OVERLAYS,
    REPO,
    Manifest,
    containers,
    key,
    patch_files,
    pod_spec,
    raw_documents,
    render_kustomize,
)
from tests.unit.deploy.schemas import schema_errors

# What the kustomize embedded in kubectl 1.20 (v2.0.3, Debian's kubernetes-client) understands: newer fields
# (`patches`, `components`, `labels`, `replacements`) would fail there.
KUSTOMIZE_V2_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "bases",
    "namespace",
    "namePrefix",
    "nameSuffix",
    "commonLabels",
    "commonAnnotations",
    "patchesStrategicMerge",
    "patchesJson6902",
    "images",
    "configMapGenerator",
    "secretGenerator",
    "generatorOptions",
    "vars",
    "crds",
    "configurations",
}


def _kustomizations() -> list[Path]:
    return sorted(KUSTOMIZE.rglob("kustomization.yaml"))


@pytest.mark.parametrize("path", _kustomizations(), ids=lambda path: str(path.parent.relative_to(KUSTOMIZE)))
def test_kustomizations_keep_to_what_kubectl_1_20_understands(path: Path) -> None:
    spec = yaml.safe_load(path.read_text())
    assert set(spec) <= KUSTOMIZE_V2_FIELDS, f"newer kustomize fields: {set(spec) - KUSTOMIZE_V2_FIELDS}"
    # kustomize v2 takes only files in `resources`; folders go in `bases`.
    for name in spec.get("resources", []):
        assert (path.parent / name).is_file(), f"{name}: resources must be files (folders go in bases)"
    for name in spec.get("bases", []):
        assert (path.parent / name / "kustomization.yaml").is_file(), f"{name}: not a kustomization"
    for generator in spec.get("secretGenerator", []) + spec.get("configMapGenerator", []):
        assert set(generator) <= {"name", "literals", "files", "env", "type", "behavior"}, generator


def test_every_object_file_is_valid_as_written() -> None:
    """Without rendering (no kubectl needed): each object in the YAML files, patches excepted."""
    patches = patch_files()
    documents = [(path, doc) for path, doc in raw_documents() if path not in patches]
    assert len(documents) > 30
    errors = {f"{path.relative_to(REPO)} {key(doc)}": schema_errors(doc) for path, doc in documents}
    assert {where: found for where, found in errors.items() if found} == {}


@pytest.mark.parametrize("tree", OVERLAYS)
def test_rendered_objects_are_valid(tree: str) -> None:
    objects = render_kustomize(tree)
    assert len({key(manifest) for manifest in objects}) == len(objects), "two objects with one name"
    errors = {key(manifest): schema_errors(manifest) for manifest in objects}
    assert {where: found for where, found in errors.items() if found} == {}


def test_a_misspelt_field_fails_the_schemas() -> None:
    """The checks can fail: a typo is an error for Kubernetes' kinds and for KEDA's."""
    objects = {key(manifest): manifest for manifest in render_kustomize("base")}
    api = objects["Deployment", "pagemill-api"]
    api["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    scaler = objects["ScaledObject", "pagemill-worker-cpu"]
    scaler["spec"]["triggers"][0]["authenticationRefs"] = {"name": "pagemill-redis"}
    scaler["spec"]["maxReplicaCount"] = 0
    assert any("imagePullPolcy" in error for error in schema_errors(api))
    errors = schema_errors(scaler)
    assert any("authenticationRefs" in error for error in errors)
    assert any("maxReplicaCount" in error for error in errors)


@pytest.mark.parametrize("tree", OVERLAYS)
def test_every_pod_runs_unprivileged_read_only_and_bounded(tree: str) -> None:
    """Non-root, no escalation, no capabilities, the runtime's seccomp profile, a read-only root
    filesystem, and requests and limits of CPU, memory and scratch disk on every container."""
    problems = []
    for manifest in render_kustomize(tree):
        spec = pod_spec(manifest)
        if spec is None:
            continue
        pod = spec.get("securityContext", {})
        if not pod.get("runAsNonRoot") or pod.get("runAsUser", 0) == 0:
            problems.append(f"{key(manifest)}: not runAsNonRoot with a non-zero runAsUser")
        if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{key(manifest)}: no RuntimeDefault seccomp profile")
        for container in containers(manifest):
            where = f"{key(manifest)} {container['name']}"
            security = container.get("securityContext", {})
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: writable root filesystem")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: privilege escalation allowed")
            if security.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities not all dropped")
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                missing = {"cpu", "memory", "ephemeral-storage"} - set(resources.get(kind, {}))
                if missing:
                    problems.append(f"{where}: no {kind} of {sorted(missing)}")
            if not any(mount["mountPath"] == "/tmp" for mount in container.get("volumeMounts", [])):
                problems.append(f"{where}: no writable /tmp")
    assert problems == []


@pytest.mark.parametrize("tree", OVERLAYS)
def test_probes_and_prometheus_annotations_name_real_ports(tree: str) -> None:
    for manifest in render_kustomize(tree):
        for container in containers(manifest):
            ports = {port["name"]: port["containerPort"] for port in container.get("ports", [])}
            for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(probe_name)
                if probe is None or "exec" in probe:
                    continue
                port = (probe.get("httpGet") or probe.get("tcpSocket"))["port"]
                assert port in ports, f"{key(manifest)} {container['name']} {probe_name}: no port {port}"
            env = {item["name"]: item.get("value") for item in container.get("env", [])}
            if "PAGEMILL_WORKER__METRICS_PORT" in env:
                assert ports.get("metrics") == int(env["PAGEMILL_WORKER__METRICS_PORT"]), key(manifest)
        annotations = (manifest.get("spec", {}).get("template", {}).get("metadata", {})).get(
            "annotations", {}
        )
        if annotations.get("prometheus.io/scrape") == "true":
            served = {port["containerPort"] for c in containers(manifest) for port in c.get("ports", [])}
            assert int(annotations["prometheus.io/port"]) in served, key(manifest)


@pytest.mark.parametrize("tree", OVERLAYS)
def test_images_are_pinned_and_pagemill_is_this_version(tree: str) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == version, "Chart.yaml appVersion differs from pyproject.toml's version"
    for manifest in render_kustomize(tree):
        for container in containers(manifest):
            image = container["image"]
            name, _, tag = image.rpartition(":")
            assert name and tag and tag != "latest" and "/" not in tag, f"{key(manifest)}: {image} unpinned"
            if name.endswith("pagemill"):
                assert tag == version, f"{key(manifest)}: {image} is not Pagemill {version}"


def _references(manifest: Manifest) -> set[tuple[str, str, str | None]]:
    """(kind, name, key) of every ConfigMap and Secret an object needs (optional ones left out)."""
    found: set[tuple[str, str, str | None]] = set()
    for container in containers(manifest):
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                found.add(("ConfigMap", source["configMapRef"]["name"], None))
            if "secretRef" in source:
                found.add(("Secret", source["secretRef"]["name"], None))
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref and not ref.get("optional"):
                found.add(("Secret", ref["name"], ref["key"]))
    if manifest["kind"] == "TriggerAuthentication":
        found |= {("Secret", ref["name"], ref["key"]) for ref in manifest["spec"].get("secretTargetRef", [])}
    return found


def _unresolved(objects: list[Manifest]) -> set[tuple[str, str, str | None]]:
    present: dict[tuple[str, str], dict[str, Any]] = {}
    for manifest in objects:
        if manifest["kind"] in {"ConfigMap", "Secret"}:
            present[key(manifest)] = {**manifest.get("data", {}), **manifest.get("stringData", {})}
    return {
        (kind, name, item)
        for manifest in objects
        for kind, name, item in _references(manifest)
        if (kind, name) not in present or (item is not None and item not in present[kind, name])
    }


def test_the_trial_brings_every_secret_it_reads() -> None:
    assert _unresolved(render_kustomize("overlays/trial")) == set()


@pytest.mark.parametrize("tree", ["base", "overlays/production", "overlays/production-gpu"])
def test_production_reads_exactly_the_two_documented_secrets(tree: str) -> None:
    """The Secrets an operator creates before applying (docs/deployment.md; the production overlay's
    header names them): the credentials, and KEDA's view of the broker's Redis."""
    names = {(kind, name) for kind, name, _ in _unresolved(render_kustomize(tree))}
    assert names == {("Secret", "pagemill"), ("Secret", "pagemill-keda-redis")}
    header = (KUSTOMIZE / "overlays/production/kustomization.yaml").read_text()
    assert all(f"#   {name}" in header for _, name in names)
