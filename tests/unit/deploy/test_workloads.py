"""The rendered workloads fit Pagemill: settings that exist, autoscalers that watch the right Redis lists,
grace periods above the longest task, a GPU pool that agrees with its server, network policies on every pod.
"""

from __future__ import annotations

import base64
import re
import shlex
import types
from typing import Any

import pytest
from kombu.transport.redis import Channel
from pydantic import BaseModel

from pagemill.queue import ALL_QUEUES, broker_priority
from pagemill.settings import Settings, get_settings
from tests.unit.deploy.manifests import OVERLAYS, Manifest, containers, key, pod_spec, render_kustomize

SCALED_POOLS = {"pagemill-worker-ingest", "pagemill-worker-cpu", "pagemill-worker-gpu"}


def _objects(tree: str) -> dict[tuple[str, str], Manifest]:
    return {key(manifest): manifest for manifest in render_kustomize(tree)}


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def _setting_exists(name: str) -> bool:
    """Whether PAGEMILL_A__B names the field a.b of Settings (pydantic-settings would ignore it silently)."""
    model: type[BaseModel] = Settings
    parts = name.removeprefix("PAGEMILL_").lower().split("__")
    for index, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif index != len(parts) - 1:
            return False
    return True


@pytest.mark.parametrize("tree", ["overlays/trial", "overlays/production-gpu"])
def test_every_pagemill_variable_is_a_setting(tree: str) -> None:
    names = set()
    for manifest in render_kustomize(tree):
        if manifest["kind"] in {"ConfigMap", "Secret"}:
            names |= set(manifest.get("data", {}))
        for container in containers(manifest):
            names |= {item["name"] for item in container.get("env", [])}
    pagemill = {name for name in names if name.startswith("PAGEMILL_")}
    assert len(pagemill) >= 10
    assert sorted(name for name in pagemill if not _setting_exists(name)) == []


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("tree", ["overlays/trial", "overlays/production-gpu"])
def test_every_process_loads_its_settings(tree: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each Pagemill container's environment (ConfigMap, Secret, its own env) makes valid Settings."""
    objects = _objects(tree)
    secret = objects.get(("Secret", "pagemill"))
    credentials = (
        {name: base64.b64decode(value).decode() for name, value in secret["data"].items()}
        if secret
        else {
            "PAGEMILL_DATABASE__URL": "postgresql+psycopg://u:p@db/pagemill",
            "PAGEMILL_BROKER__URL": "redis://r:6379/0",
        }
    )
    checked = 0
    for manifest in objects.values():
        for container in containers(manifest):
            if container.get("command", [""])[0] != "pagemill":
                continue
            environment = {
                **objects["ConfigMap", "pagemill-config"]["data"],
                **credentials,
                **_env(container),
            }
            for name, value in environment.items():
                monkeypatch.setenv(name, value)
            get_settings.cache_clear()
            settings = get_settings()
            assert not settings.is_embedded, key(manifest)
            assert settings.storage.backend == "s3"
            if "--queues" in container["command"]:
                queues = container["command"][container["command"].index("--queues") + 1].split(",")
                assert set(queues) <= set(ALL_QUEUES), key(manifest)
            for name in environment:
                monkeypatch.delenv(name)
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize("tree", OVERLAYS)
def test_autoscaled_deployments_leave_replicas_to_their_autoscaler(tree: str) -> None:
    objects = _objects(tree)
    targets = [
        manifest["spec"]["scaleTargetRef"]
        for manifest in objects.values()
        if manifest["kind"] in {"ScaledObject", "HorizontalPodAutoscaler"}
    ]
    names = [target["name"] for target in targets]
    assert len(names) == len(set(names)), "a Deployment under two autoscalers"
    for target in targets:
        deployment = objects.get(("Deployment", target["name"]))
        assert deployment is not None, f"autoscaler of a missing {target['name']}"
        assert (target["kind"], target["apiVersion"]) == ("Deployment", "apps/v1")
        assert "replicas" not in deployment["spec"], f"{target['name']}: replicas would fight its autoscaler"


@pytest.mark.parametrize("tree", OVERLAYS)
def test_selectors_select_their_pods(tree: str) -> None:
    objects = render_kustomize(tree)
    pods = [m["spec"]["template"]["metadata"]["labels"] for m in objects if pod_spec(m) is not None]
    for manifest in objects:
        kind, spec = manifest["kind"], manifest.get("spec", {})
        if kind in {"Deployment", "StatefulSet"}:
            own = spec["template"]["metadata"]["labels"]
            assert spec["selector"]["matchLabels"].items() <= own.items(), key(manifest)
        selector = {
            "Service": spec.get("selector"),
            "PodDisruptionBudget": spec.get("selector", {}).get("matchLabels"),
        }
        if kind in selector:
            chosen = [labels for labels in pods if selector[kind].items() <= labels.items()]
            assert len(chosen) == 1, f"{key(manifest)} selects {len(chosen)} pod templates"


def _redis_keys(queue: str) -> dict[int, str]:
    """The Redis list kombu's Redis transport puts a message of each Pagemill priority (0-9) on, computed
    with kombu's own code (pagemill.queue.broker_priority maps Pagemill's priority to the broker's)."""
    channel = types.SimpleNamespace(priority_steps=Channel.priority_steps, sep=Channel.sep)
    channel.priority = lambda n: Channel.priority(channel, n)
    return {priority: Channel._q_for_pri(channel, queue, broker_priority(priority)) for priority in range(10)}


@pytest.mark.parametrize("tree", ["overlays/trial", "overlays/production-gpu"])
def test_keda_watches_every_redis_list_of_its_pools_queue(tree: str) -> None:
    objects = _objects(tree)
    scalers = [manifest for manifest in objects.values() if manifest["kind"] == "ScaledObject"]
    assert {scaler["spec"]["scaleTargetRef"]["name"] for scaler in scalers} == SCALED_POOLS & {
        name for kind, name in objects if kind == "Deployment"
    }
    for scaler in scalers:
        deployment = objects["Deployment", scaler["spec"]["scaleTargetRef"]["name"]]
        command = next(
            c for c in containers(deployment) if c.get("command", [])[:2] == ["pagemill", "worker"]
        )["command"]
        (queue,) = command[command.index("--queues") + 1].split(",")
        watched = {trigger["metadata"]["listName"] for trigger in scaler["spec"]["triggers"]}
        lists = _redis_keys(queue)
        # Every list a message can be on (all four priority steps are used by some priority), no other.
        assert watched == set(lists.values()), key(scaler)
        assert len(watched) == len(Channel.priority_steps)
        for trigger in scaler["spec"]["triggers"]:
            assert trigger["type"] == "redis"
            assert ("TriggerAuthentication", trigger["authenticationRef"]["name"]) in objects
            assert trigger["metadata"]["databaseIndex"] == "0"
            assert int(trigger["metadata"]["listLength"]) >= 1


@pytest.mark.parametrize("tree", ["overlays/trial", "overlays/production-gpu"])
def test_keda_formula_adds_up_all_triggers_and_passes_kedas_checks(tree: str) -> None:
    """What KEDA's admission webhook checks (ValidateAndCompileScalingModifiers): the formula names only
    triggers that exist, the target is a positive number, the metric type is not Utilization; and ours:
    the formula is the plain sum of every trigger."""
    for scaler in (m for m in render_kustomize(tree) if m["kind"] == "ScaledObject"):
        spec = scaler["spec"]
        modifiers = spec["advanced"]["scalingModifiers"]
        names = [trigger["name"] for trigger in spec["triggers"]]
        assert len(names) == len(set(names))
        assert sorted(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", modifiers["formula"])) == sorted(names)
        assert re.fullmatch(r"\w+( \+ \w+)*", modifiers["formula"]), modifiers["formula"]
        assert float(modifiers["target"]) > 0
        assert modifiers["metricType"] == "AverageValue"
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]


@pytest.mark.parametrize("tree", ["overlays/trial", "overlays/production-gpu"])
def test_scale_down_never_cuts_a_task_short(tree: str) -> None:
    """A pool pod scaled down or rolled finishes what it runs: the warm shutdown (worker.shutdown_timeout_s)
    outlasts the longest task (worker.task_time_limit_s), and the kubelet's grace outlasts the warm
    shutdown plus the 10 s cold-shutdown escalation (pagemill.cli.supervise)."""
    defaults = Settings()
    task_limit = defaults.worker.task_time_limit_s
    for manifest in render_kustomize(tree):
        spec = pod_spec(manifest)
        if spec is None or manifest["kind"] != "Deployment":
            continue
        grace = spec["terminationGracePeriodSeconds"]
        for container in containers(manifest):
            command = container.get("command", [])
            if command[:2] != ["pagemill", "worker"]:
                continue
            env = _env(container)
            shutdown = int(env.get("PAGEMILL_WORKER__SHUTDOWN_TIMEOUT_S", defaults.worker.shutdown_timeout_s))
            assert grace > shutdown + 10, key(manifest)
            if manifest["metadata"]["name"] in SCALED_POOLS:
                assert shutdown >= task_limit, f"{key(manifest)}: a task may outlive the warm shutdown"
            else:  # webhooks: a delivery is bounded by webhooks.timeout_s, within the default shutdown
                assert shutdown > defaults.webhooks.timeout_s
        if manifest["metadata"]["name"] == "pagemill-api":
            (api,) = spec["containers"]
            pre_stop = int(api["lifecycle"]["preStop"]["exec"]["command"][1])
            assert grace > 30 + pre_stop  # uvicorn's timeout_graceful_shutdown (pagemill.cli.serve.api)


def test_the_gpu_pool_agrees_with_its_vllm_server() -> None:
    objects = _objects("overlays/production-gpu")
    config = objects["ConfigMap", "pagemill-config"]["data"]
    pod = pod_spec(objects["Deployment", "pagemill-worker-gpu"])
    assert pod is not None
    vllm, worker = (next(c for c in pod["containers"] if c["name"] == name) for name in ("vllm", "worker"))
    args = vllm["args"]
    env = _env(worker)
    assert args[args.index("--max-num-seqs") + 1] == env["PAGEMILL_ENGINES__VLLM__MAX_NUM_SEQS"]
    assert args[args.index("--model") + 1] == config["PAGEMILL_ENGINES__VLLM__MODEL"]
    port = args[args.index("--port") + 1]
    assert env["PAGEMILL_ENGINES__VLLM__BASE_URL"] == f"http://127.0.0.1:{port}"
    service = objects["Service", "pagemill-vllm"]
    assert (
        config["PAGEMILL_ENGINES__VLLM__BASE_URL"]
        == f"http://pagemill-vllm:{service['spec']['ports'][0]['port']}"
    )
    assert config["PAGEMILL_ENGINES__DEFAULT"] == "vllm"
    # One GPU per pod, on GPU nodes; the model may take a while to load, and the worker waits for it.
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    budget = {
        c["name"]: c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"]
        for c in (vllm, worker)
    }
    assert budget["vllm"] >= 20 * 60 and budget["worker"] > budget["vllm"]
    assert vllm["readinessProbe"]["httpGet"]["path"] == "/v1/models"  # the model is served
    # vLLM serves until the worker has finished its pages: its preStop waits for the worker's port to close.
    pre_stop = shlex.join(vllm["lifecycle"]["preStop"]["exec"]["command"])
    assert f'("127.0.0.1", {env["PAGEMILL_WORKER__METRICS_PORT"]})' in pre_stop


@pytest.mark.parametrize("tree", OVERLAYS)
def test_every_pod_is_under_a_network_policy_both_ways(tree: str) -> None:
    objects = render_kustomize(tree)
    policies = [m for m in objects if m["kind"] == "NetworkPolicy"]

    def selects(policy: Manifest, labels: dict[str, str]) -> bool:
        selector = policy["spec"]["podSelector"]
        if not selector.get("matchLabels", {}).items() <= labels.items():
            return False
        return all(
            labels.get(expression["key"]) in expression["values"]
            for expression in selector.get("matchExpressions", [])
            if expression["operator"] == "In"
        )

    for manifest in objects:
        if pod_spec(manifest) is None:
            continue
        labels = manifest["spec"]["template"]["metadata"]["labels"]
        types_ = {
            kind for policy in policies if selects(policy, labels) for kind in policy["spec"]["policyTypes"]
        }
        assert types_ == {"Ingress", "Egress"}, f"{key(manifest)} is open: {types_}"
        internet = labels.get("pagemill.io/internet-egress") == "true"
        # Only the pools that fetch URLs and deliver webhooks reach the internet; never the page readers.
        expected = manifest["metadata"]["name"] in {"pagemill-worker-ingest", "pagemill-worker-webhooks"}
        assert internet == expected, key(manifest)
