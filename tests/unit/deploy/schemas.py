"""Schema validators for deploy/'s objects: Kubernetes' own kinds from the schemas kubernetes-validate bundles
(its strict set: unknown fields fail), KEDA's from deploy/schemas.

Validation runs on jsonschema-rs: the Kubernetes schemas are large, and the pure-Python validator took
seconds where this takes milliseconds.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import jsonschema_rs
from kubernetes_validate import utils as kubernetes_schemas

from tests.unit.deploy.manifests import SCHEMAS, Manifest

# The oldest Kubernetes the manifests are for (the chart's kubeVersion) and the newest one bundled.
OLDEST_KUBERNETES = "1.25.0"
KEDA_SCHEMAS = {
    "ScaledObject": "keda-scaledobject.schema.json",
    "TriggerAuthentication": "keda-triggerauthentication.schema.json",
}


@functools.cache
def kubernetes_versions() -> tuple[str, ...]:
    """The versions every object is checked against."""
    bundled = kubernetes_schemas.all_versions()
    assert OLDEST_KUBERNETES in bundled, f"kubernetes-validate no longer bundles {OLDEST_KUBERNETES}"
    return OLDEST_KUBERNETES, bundled[-1]


def _schema(version: str, name: str) -> Any:
    return kubernetes_schemas.schema_contents(
        f"kubernetes-json-schema/v{version}-local-strict/{name}", version
    )


@functools.cache
def _registry(version: str) -> jsonschema_rs.Registry:
    definitions = _schema(version, "_definitions.json")
    return jsonschema_rs.Registry([(definitions["$id"], definitions)])


@functools.cache
def _kubernetes_validator(version: str, kind: str, api_version: str) -> Any:
    # The file kubernetes_validate.validate would read (rbac.authorization.k8s.io/v1 -> rbac-v1).
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return jsonschema_rs.validator_for(
        _schema(version, f"{kind.lower()}-{group}.json"), registry=_registry(version)
    )


@functools.cache
def _keda_validator(kind: str) -> Any:
    # validator_for refuses a schema that is not valid JSON Schema itself.
    return jsonschema_rs.validator_for(json.loads((SCHEMAS / KEDA_SCHEMAS[kind]).read_text()))


def schema_errors(manifest: Manifest) -> list[str]:
    """Everything wrong with ``manifest`` by its kind's schema(s); [] when it is valid. An object of an
    unknown kind is an error: every kind in deploy/ must be checked."""
    kind, api_version = manifest["kind"], manifest["apiVersion"]
    validators: dict[str, Any] = {}
    if api_version.startswith("keda.sh/"):
        if kind not in KEDA_SCHEMAS:
            return [f"no schema for KEDA kind {kind}: add one to deploy/schemas"]
        validators["keda"] = _keda_validator(kind)
    else:
        for version in kubernetes_versions():
            try:
                validators[version] = _kubernetes_validator(version, kind, api_version)
            except FileNotFoundError:
                return [f"Kubernetes {version} has no {api_version} {kind}"]
    return [
        f"{against}: {'.'.join(str(part) for part in error.instance_path) or '(top)'}: {error.message}"
        for against, validator in validators.items()
        for error in validator.iter_errors(manifest)
    ]
