"""deploy/Dockerfile, checked without building it (CI has no Docker daemon): its stages,
the locked install, the unprivileged user, the health check, and that everything it copies
from the build context (the repository root) is in the repository."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

import pytest

from tests.deploy.files import DEPLOY, HERALD_COMMANDS, ROOT


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(text: str) -> list[Stage]:
    """Instructions per stage, continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"

    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, args.strip()))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse((DEPLOY / "Dockerfile").read_text())


def test_multi_stage_with_named_stages(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    assert all(stage.name for stage in stages), "every stage is named (COPY --from uses it)"


def test_dependencies_come_from_the_lock_file(stages: list[Stage]) -> None:
    runs = " ".join(stages[0].all("RUN"))
    assert "uv sync --frozen --no-dev" in runs
    # uv.lock is copied before the sync, or --frozen would fail.
    copied = " ".join(stages[0].all("COPY"))
    assert "uv.lock" in copied and "pyproject.toml" in copied


def test_final_stage_runs_as_an_unprivileged_user(stages: list[Stage]) -> None:
    users = stages[-1].all("USER")
    assert users, "the final stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_final_stage_ships_no_build_tools(stages: list[Stage]) -> None:
    runs = " ".join(stages[-1].all("RUN"))
    assert "uv " not in runs and "pip install" not in runs


def test_healthcheck_asks_the_readiness_endpoint(stages: list[Stage]) -> None:
    # Not the full report: a stopped worker or beat must not make the api unhealthy.
    checks = stages[-1].all("HEALTHCHECK")
    assert len(checks) == 1
    assert "/api/v1/health/ready'" in checks[0]


def test_entrypoint_is_herald_and_the_default_command_a_real_one(stages: list[Stage]) -> None:
    assert json.loads(stages[-1].all("ENTRYPOINT")[-1]) == ["herald"]
    command = json.loads(stages[-1].all("CMD")[-1])
    assert command == ["api"] and command[0] in HERALD_COMMANDS


def copy_problems(stages: list[Stage]) -> list[str]:
    """COPY sources missing from the build context, and --from naming no earlier stage."""
    problems: list[str] = []
    for index, stage in enumerate(stages):
        for args in stage.all("COPY"):
            words = shlex.split(args)
            options = [w for w in words if w.startswith("--")]
            sources = [w for w in words if not w.startswith("--")][:-1]
            source_stage = next(
                (o.split("=", 1)[1] for o in options if o.startswith("--from=")), None
            )
            if source_stage is not None:
                if source_stage not in {s.name for s in stages[:index]}:
                    problems.append(f"COPY --from={source_stage}: no earlier stage of that name")
                continue
            problems += [
                f"COPY {s}: not in the repository" for s in sources if not (ROOT / s).exists()
            ]
    return problems


def test_every_copied_path_exists_in_the_build_context(stages: list[Stage]) -> None:
    assert copy_problems(stages) == []


def test_a_missing_file_or_stage_is_reported() -> None:
    bad = parse(
        "FROM python:3.11-slim AS build\nCOPY src no-such-file ./\n"
        "FROM python:3.11-slim AS runtime\nCOPY --from=builder /app /app\n"
    )
    assert copy_problems(bad) == [
        "COPY no-such-file: not in the repository",
        "COPY --from=builder: no earlier stage of that name",
    ]
