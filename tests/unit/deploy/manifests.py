"""Render and read deploy/: kustomize through kubectl, the Helm chart through Helm's own engine
(helm-python-sdk), and the files as they are.

Rendering runs a program (kubectl) or a native library, but touches no network and no cluster: these tests
are unit tests of files. A renderer that is missing skips the tests that need it, saying which and why.
"""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
KUSTOMIZE = DEPLOY / "kustomize"
CHART = DEPLOY / "helm" / "pagemill"
EXAMPLES = DEPLOY / "helm" / "examples"
SCHEMAS = DEPLOY / "schemas"
MONITORING = DEPLOY / "monitoring"

# Each kustomize tree that is applied as a whole, and the chart values that must render the same objects.
OVERLAYS = {
    "base": [],
    "overlays/trial": ["values-trial.yaml"],
    "overlays/production": ["values-production.yaml"],
    "overlays/production-gpu": ["values-production.yaml", "values-gpu.yaml"],
}
RELEASE = "pagemill"
NAMESPACE = "pagemill"

Manifest = dict[str, Any]


def kubectl() -> str:
    """kubectl's path, or a skip naming the package that provides it."""
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip(
            "kubectl is not installed: the kustomize rendering tests need it (Debian package "
            "kubernetes-client, added by `make system-deps` as root); the raw files are still checked"
        )
    return path


@functools.cache
def _kustomize_builds() -> dict[str, tuple[Manifest, ...]]:
    # Every tree at once: one kubectl run takes a second or more, and they do not depend on each other.
    program = kubectl()

    def build(tree: str) -> tuple[Manifest, ...]:
        result = subprocess.run(
            [program, "kustomize", str(KUSTOMIZE / tree)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"kubectl kustomize {tree} failed:\n{result.stderr}"
        return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)

    with ThreadPoolExecutor(max_workers=len(OVERLAYS)) as pool:
        return dict(zip(OVERLAYS, pool.map(build, OVERLAYS), strict=True))


def render_kustomize(tree: str) -> list[Manifest]:
    """The objects `kubectl kustomize deploy/kustomize/<tree>` prints (rendered once per test session)."""
    return copy.deepcopy(list(_kustomize_builds()[tree]))


def helm() -> Any:
    """The helm_python module, or a skip when its bundled Helm library cannot load on this platform.

    Not installed at all is a failure, not a skip: `make test` installs it (requirements-dev.lock)."""
    try:
        import helm_python
    except OSError as exc:  # the bundled libhelm_c cannot load on this platform
        pytest.skip(
            f"helm-python-sdk (requirements-dev.lock) is not usable here ({exc}): the chart is not rendered"
        )
    return helm_python


def example_values(*files: str) -> dict[str, Any]:
    """The example values files merged in order, as `helm -f a -f b` would (maps merge, the rest replace)."""
    merged: dict[str, Any] = {}
    for name in files:
        merged = _merge(merged, yaml.safe_load((EXAMPLES / name).read_text()) or {})
    return merged


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge(result[key], value)
        else:
            result[key] = value
    return result


@functools.cache
def _helm_render(files: tuple[str, ...]) -> tuple[Manifest, ...]:
    helm_python = helm()
    with helm_python.Chart.load(str(CHART)) as chart:
        rendered = chart.render(example_values(*files), name=RELEASE, namespace=NAMESPACE, is_install=True)
    # NOTES.txt is rendered too: it is text for the person installing, not objects.
    manifests = [text for name, text in rendered.items() if name.endswith(".yaml")]
    return tuple(doc for text in manifests for doc in yaml.safe_load_all(text) if doc)


def render_chart(*files: str) -> list[Manifest]:
    """The objects the chart renders for release `pagemill` with these example values files."""
    return copy.deepcopy(list(_helm_render(tuple(files))))


def raw_documents() -> list[tuple[Path, Manifest]]:
    """Every object written out in deploy/kustomize's YAML files (not kustomization.yaml): no rendering."""
    documents = []
    for path in sorted(KUSTOMIZE.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def patch_files() -> set[Path]:
    """Files of deploy/kustomize that are patches (partial objects), not objects of their own."""
    patches = set()
    for path in KUSTOMIZE.rglob("kustomization.yaml"):
        spec = yaml.safe_load(path.read_text())
        patches |= {path.parent / name for name in spec.get("patchesStrategicMerge", [])}
        patches |= {path.parent / item["path"] for item in spec.get("patchesJson6902", [])}
    return patches


def key(manifest: Manifest) -> tuple[str, str]:
    """(kind, name): what identifies an object within one namespace."""
    return manifest["kind"], manifest["metadata"]["name"]


def pod_spec(manifest: Manifest) -> dict[str, Any] | None:
    """The pod template's spec of a workload, else None."""
    if manifest["kind"] in {"Deployment", "StatefulSet", "Job", "DaemonSet"}:
        spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
        return spec
    return None


def containers(manifest: Manifest) -> list[dict[str, Any]]:
    """Every container (init containers too) of a workload; [] for other kinds."""
    spec = pod_spec(manifest)
    if spec is None:
        return []
    return [*spec.get("initContainers", []), *spec["containers"]]
