"""The Helm chart: values.schema.json holds the defaults and the examples and refuses mistakes, the chart
lints clean, and it renders exactly the objects deploy/kustomize renders for the same install.

Rendered with helm-python-sdk (Helm 4's own engine, bundled as a library: no helm binary, no network); the
schema and the template-to-kustomize mapping are checked without it.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pagemill.settings import Settings
from tests.unit.deploy.manifests import (
    CHART,
    EXAMPLES,
    KUSTOMIZE,
    OVERLAYS,
    Manifest,
    example_values,
    helm,
    key,
    patch_files,
    raw_documents,
    render_chart,
    render_kustomize,
)
from tests.unit.deploy.schemas import schema_errors

EXAMPLE_SETS = [files for files in OVERLAYS.values() if files]
# Helm's additions to deploy/kustomize's objects, left out of the comparison.
HELM_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version"}
HELM_ANNOTATION_PREFIXES = ("checksum/", "helm.sh/")


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return schema


def _defaults() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def _merged(values: dict[str, Any]) -> dict[str, Any]:
    """The chart's defaults with ``values`` over them, as Helm merges them (maps merge, lists replace)."""

    def merge(base: Any, override: Any) -> Any:
        if isinstance(base, dict) and isinstance(override, dict):
            return {**base, **{name: merge(base.get(name), value) for name, value in override.items()}}
        return override

    merged: dict[str, Any] = merge(_defaults(), values)
    return merged


def _schema_errors(values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(_schema())
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)]


@pytest.mark.parametrize("files", [[], *EXAMPLE_SETS], ids=lambda files: "+".join(files) or "values.yaml")
def test_the_schema_holds_the_defaults_and_the_examples(files: list[str]) -> None:
    assert _schema_errors(_merged(example_values(*files))) == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"api": {"minReplica": 3}}, "minReplica"),  # a misspelt value
        ({"trial": {"enabled": True}}, "postgresPassword"),  # a trial without its passwords
        ({"secrets": {"create": True}}, "PAGEMILL_DATABASE__URL"),  # Secrets made without credentials
        ({"workers": {"terminationGracePeriodSeconds": 600}}, "terminationGracePeriodSeconds"),
        ({"config": {"DATABASE_URL": "x"}}, "DATABASE_URL"),  # not a Pagemill setting
        ({"api": {"resources": {"requests": {"cpu": "two"}, "limits": {}}}}, "two"),
    ],
)
def test_the_schema_refuses_mistakes(change: dict[str, Any], complaint: str) -> None:
    errors = _schema_errors(_merged(change))
    assert any(complaint in error for error in errors), errors


def test_the_schemas_bounds_follow_the_settings() -> None:
    """The grace and warm-shutdown floors are worker.task_time_limit_s's (plus the 10 s escalation)."""
    worker = _schema()["properties"]["workers"]["properties"]
    limit = Settings().worker.task_time_limit_s
    assert worker["shutdownTimeoutSeconds"]["minimum"] == limit
    assert worker["terminationGracePeriodSeconds"]["minimum"] == limit + 11


def _template_of(path: Path) -> str:
    """The chart template mirroring a kustomize file: the same name, the trial's files in trial.yaml and the
    GPU pool's policies beside its Deployment."""
    if path.parent.name == "trial":
        return "trial.yaml"
    if path.parent.name == "gpu":
        return "worker-gpu.yaml"
    return path.name


def test_every_kustomize_object_has_its_template() -> None:
    """The chart's templates map onto deploy/kustomize file by file: each object written there (the base,
    the GPU pool, the trial's backends) is written, by kind and name, in its file's template (or a helper
    it calls). Holds without rendering, so it guards the chart where Helm cannot run."""
    helpers = "\n".join(path.read_text() for path in (CHART / "templates").glob("_*.tpl"))
    missing = []
    patches = patch_files()
    for path, manifest in raw_documents():
        kind, name = key(manifest)
        if (
            ("overlays" in path.parts and path.parent.name != "trial")
            or kind == "Namespace"
            or path in patches
        ):
            continue
        template = CHART / "templates" / _template_of(path)
        text = template.read_text() if template.is_file() else ""
        # Templates name objects {{ $fullname }}-api, or {{ $fullname }}-{{ .component }} with "api".
        suffix = name.removeprefix("pagemill").lstrip("-")
        if not (re.search(rf"kind: {kind}\b", text + helpers) and suffix in text):
            missing.append((str(path.relative_to(KUSTOMIZE)), kind, name, template.name))
    assert missing == []


def test_the_chart_lints_clean() -> None:
    helm_python = helm()
    for files in [[], *EXAMPLE_SETS]:
        report = helm_python.lint(str(CHART), example_values(*files), strict=True, kube_version="v1.25.0")
        assert report["errors"] == [], files
        assert [m for m in report["messages"] if m["severity"] >= 2] == [], files


def test_helm_refuses_values_the_schema_refuses() -> None:
    helm_python = helm()
    with helm_python.Chart.load(str(CHART)) as chart:
        chart.validate_schema(example_values("values-trial.yaml"))
        with pytest.raises(helm_python.HelmValuesError, match="minReplica"):
            chart.validate_schema({"api": {"minReplica": 3}})


def _comparable(manifest: Manifest) -> Manifest:
    """``manifest`` without what only one of the two renderers adds: the namespace (kustomize's), Helm's
    labels, checksum and hook annotations; a Secret's values decoded."""
    manifest = copy.deepcopy(manifest)
    metas = [manifest["metadata"]]
    if "template" in manifest.get("spec", {}):
        metas.append(manifest["spec"]["template"]["metadata"])
    for meta in metas:
        meta.pop("namespace", None)
        for field, drop in (("labels", HELM_LABELS), ("annotations", None)):
            if field not in meta:
                continue
            meta[field] = {
                name: value
                for name, value in meta[field].items()
                if (name not in drop if drop else not name.startswith(HELM_ANNOTATION_PREFIXES))
            }
            if not meta[field]:
                del meta[field]
    if manifest["kind"] == "Secret":
        values = {name: base64.b64decode(value).decode() for name, value in manifest.pop("data", {}).items()}
        manifest["stringData"] = {**values, **manifest.pop("stringData", {})}
    return manifest


@pytest.mark.parametrize("tree", OVERLAYS)
def test_the_chart_renders_what_kustomize_renders(tree: str) -> None:
    """Release `pagemill` with the example values of an overlay = that overlay, object for object (the
    overlays' Namespace aside: Helm installs into one)."""
    chart = {key(m): _comparable(m) for m in render_chart(*OVERLAYS[tree])}
    kustomize = {key(m): _comparable(m) for m in render_kustomize(tree) if m["kind"] != "Namespace"}
    assert sorted(chart) == sorted(kustomize)
    different = [name for name in kustomize if kustomize[name] != chart[name]]
    assert different == [], "\n".join(
        f"{name}:\n  kustomize {json.dumps(kustomize[name], sort_keys=True)}\n  chart     "
        f"{json.dumps(chart[name], sort_keys=True)}"
        for name in different[:2]
    )


def test_other_values_render_valid_objects() -> None:
    """Values no overlay uses: another release name, weights on a volume, no model download."""
    helm_python = helm()
    values = example_values("values-production.yaml", "values-gpu.yaml")
    values["gpu"] |= {"modelDownload": False, "vllm": {"modelsClaimName": "ocr-models"}}
    with helm_python.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values, name="acme", namespace="ocr", is_install=True)
    assert "acme-pagemill-api" in rendered.get("pagemill/templates/NOTES.txt", "")
    texts = [text for name, text in rendered.items() if name.endswith(".yaml")]
    objects = {key(doc): doc for text in texts for doc in yaml.safe_load_all(text) if doc}
    assert {name for _, name in objects} >= {"acme-pagemill-api", "acme-pagemill-worker-gpu"}
    assert ("NetworkPolicy", "acme-pagemill-model-download") not in objects
    volumes = objects["Deployment", "acme-pagemill-worker-gpu"]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "ocr-models"}} in volumes
    config = objects["ConfigMap", "acme-pagemill-config"]["data"]
    assert config["PAGEMILL_ENGINES__VLLM__BASE_URL"] == "http://acme-pagemill-vllm:8000"
    assert {name: schema_errors(doc) for name, doc in objects.items() if schema_errors(doc)} == {}


def test_example_files_are_all_used() -> None:
    assert {path.name for path in EXAMPLES.glob("*.yaml")} == {
        name for files in EXAMPLE_SETS for name in files
    }
