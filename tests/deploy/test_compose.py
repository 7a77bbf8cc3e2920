"""deploy/compose.yaml against the Compose specification's JSON schema, offline, plus what
Herald needs of it: scale-safe workers, Redis with a password, AOF and noeviction, a one-shot
migration the others wait for, Flower behind a profile, secrets only in the env file.

The schema is the one check-jsonschema (a dev dependency) bundles as vendor/compose-spec.json,
from the compose-spec project under the Apache License 2.0 (its licence ships beside it)."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.files import DEPLOY, HERALD_COMMANDS, SECRET_SETTINGS, TASK_TIME_LIMIT

HERALD_SERVICES = ("migrate", "api", "worker", "beat", "flower")


def compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return schema


def schema_errors(document: Any) -> list[str]:
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def seconds(duration: str) -> int:
    """A Compose duration such as "1h1m" or "3610s" in seconds."""
    units = {"h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+)([hms])", duration)
    assert "".join(n + u for n, u in parts) == duration, f"unexpected duration {duration!r}"
    return sum(int(n) * units[u] for n, u in parts)


def test_the_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert schema_errors(compose) == []


def test_the_schema_rejects_a_broken_file(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["worker"]["depends_on"]["migrate"]["condition"] = "service_finished"
    broken["services"]["api"]["restart_policy"] = "always"
    errors = schema_errors(broken)
    assert any(e.startswith("services/worker/depends_on") for e in errors)
    assert any("restart_policy" in e for e in errors)


def test_every_service_is_there(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"postgres", "redis", *HERALD_SERVICES}


def test_workers_scale(services: dict[str, dict[str, Any]]) -> None:
    # `docker compose up --scale worker=3` needs replicas that can coexist: no fixed
    # container name, no host port that a second replica could not bind.
    worker = services["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert seconds(worker["stop_grace_period"]) > TASK_TIME_LIMIT


def test_redis_has_a_password_aof_and_noeviction(services: dict[str, dict[str, Any]]) -> None:
    command = " ".join(services["redis"]["command"])
    assert '--requirepass "$$REDIS_PASSWORD"' in command
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert "REDIS_PASSWORD" in services["redis"]["healthcheck"]["test"][1]


def test_migrate_runs_once_before_the_rest(services: dict[str, dict[str, Any]]) -> None:
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker", "beat", "flower"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    assert "migrate" not in services["migrate"]["depends_on"]


def test_herald_services_run_herald_commands(services: dict[str, dict[str, Any]]) -> None:
    for name in ("migrate", "api", "worker", "beat"):
        assert "entrypoint" not in services[name], name
        assert services[name]["command"][0] in HERALD_COMMANDS, name


def test_flower_is_optional_and_asks_for_a_password(services: dict[str, dict[str, Any]]) -> None:
    flower = services["flower"]
    assert flower["profiles"] == ["flower"]
    assert '--basic-auth="$$FLOWER_BASIC_AUTH"' in flower["command"][0]
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"])


def test_secrets_come_from_the_env_file(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        assert service["env_file"] == "herald.env", name
        inline = set(service.get("environment", {}))
        assert not inline & SECRET_SETTINGS, name
        assert not {k for k in inline if re.search("PASSWORD|SECRET|KEY", k)}, name
    text = (DEPLOY / "compose.yaml").read_text()
    example = (DEPLOY / "herald.env.example").read_text()
    defined = set(re.findall(r"^([A-Z_]+)=", example, flags=re.M))
    used = set(re.findall(r"\$\$\{?([A-Z_]+)", text))
    assert used <= defined, f"not in herald.env.example: {used - defined}"
    assert defined >= SECRET_SETTINGS
    gitignore = (DEPLOY.parent / ".gitignore").read_text().splitlines()
    assert "deploy/herald.env" in gitignore
