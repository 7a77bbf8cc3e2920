"""deploy/kubernetes against the Kubernetes API's JSON schemas, offline and strict (unknown
fields rejected), with the schemas kubernetes-validate (a dev dependency) bundles; plus what
Herald needs of the manifests: the three Deployments, a migrate Job, probes on the health
endpoint, resource requests, secrets only by reference, graceful worker shutdown."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # the package ships no type hints
import pytest
import yaml

from tests.deploy.files import DEPLOY, HERALD_COMMANDS, SECRET_SETTINGS, TASK_TIME_LIMIT

MANIFESTS = DEPLOY / "kubernetes"
# The newest Kubernetes release whose schemas the pinned kubernetes-validate bundles.
KUBERNETES_VERSION: str = kubernetes_validate.latest_version()


def documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == kind}


def pod_specs() -> dict[str, dict[str, Any]]:
    """Every pod template: Deployments and the Job."""
    specs = {name: doc["spec"]["template"]["spec"] for name, doc in by_kind("Deployment").items()}
    specs.update({name: doc["spec"]["template"]["spec"] for name, doc in by_kind("Job").items()})
    return specs


@pytest.mark.parametrize(
    ("file", "document"),
    documents(),
    ids=[f"{file}:{doc['kind']}/{doc['metadata']['name']}" for file, doc in documents()],
)
def test_manifest_follows_the_kubernetes_schema(file: str, document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_schema_rejects_an_unknown_field() -> None:
    deployment = json.loads(json.dumps(by_kind("Deployment")["herald-api"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    files = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)


def test_the_workloads_are_there() -> None:
    deployments = by_kind("Deployment")
    assert set(deployments) == {"herald-api", "herald-worker", "herald-beat"}
    assert set(by_kind("Job")) == {"herald-migrate"}
    for name, spec in pod_specs().items():
        (container,) = spec["containers"]
        assert container["args"][0] in HERALD_COMMANDS, name
        assert container["args"][0] == name.removeprefix("herald-"), name


def test_one_beat_replaced_not_doubled() -> None:
    beat = by_kind("Deployment")["herald-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


def test_api_is_probed_on_readiness_and_liveness() -> None:
    # Readiness: database and broker; liveness and start-up: the process alone. Never the
    # full report, which is down while a worker or the scheduler is.
    (container,) = pod_specs()["herald-api"]["containers"]
    probes = {
        kind: container[kind]["httpGet"]
        for kind in ("readinessProbe", "livenessProbe", "startupProbe")
    }
    assert probes["readinessProbe"]["path"] == "/api/v1/health/ready"
    assert (
        probes["livenessProbe"]["path"] == probes["startupProbe"]["path"] == "/api/v1/health/live"
    )
    assert {probe["port"] for probe in probes.values()} == {"http"}


def test_services_and_budgets_select_existing_pods() -> None:
    labels = [d["spec"]["template"]["metadata"]["labels"] for d in by_kind("Deployment").values()]

    def selects(selector: dict[str, str]) -> bool:
        return any(selector.items() <= pod.items() for pod in labels)

    services = by_kind("Service")
    assert set(services) == {"herald-api"}
    assert all(selects(s["spec"]["selector"]) for s in services.values())
    budgets = by_kind("PodDisruptionBudget")
    assert budgets, "a PodDisruptionBudget"
    assert all(selects(b["spec"]["selector"]["matchLabels"]) for b in budgets.values())
    for deployment in by_kind("Deployment").values():
        assert deployment["spec"]["selector"]["matchLabels"].items() <= (
            deployment["spec"]["template"]["metadata"]["labels"].items()
        )


def test_every_container_requests_resources() -> None:
    for name, spec in pod_specs().items():
        for container in spec["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert "memory" in container["resources"]["limits"], name


def test_pods_run_unprivileged() -> None:
    for name, spec in pod_specs().items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name


def test_secrets_are_referenced_never_inlined() -> None:
    assert not by_kind("Secret"), "no Secret manifest: it would hold the secrets in the repository"
    config = by_kind("ConfigMap")["herald-config"]["data"]
    assert not set(config) & SECRET_SETTINGS
    for name, spec in pod_specs().items():
        (container,) = spec["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert set(env) == SECRET_SETTINGS, name
        for variable, entry in env.items():
            assert "value" not in entry, f"{name}: {variable} inlined"
            assert entry["valueFrom"]["secretKeyRef"] == {"name": "herald-secrets", "key": variable}


def test_workers_finish_their_task_on_shutdown() -> None:
    worker = pod_specs()["herald-worker"]
    assert worker["terminationGracePeriodSeconds"] > TASK_TIME_LIMIT


def test_every_file_is_yaml_the_tests_read() -> None:
    # A manifest under another suffix would escape validation.
    assert {p.suffix for p in MANIFESTS.iterdir() if p.is_file()} == {".yaml"}
