"""The fault suite's fixtures. Every test in this folder is marked ``faults`` (those on
real services ``integration`` too) and, under xdist, runs in one group: two cases that
kill processes and time their recovery should not share two cores with each other.

For a case: ``fault_stack`` (a :class:`~tests.faults.stack.FaultStack` on the test's
backend: private Redis, worker and beat on demand, deliveries to the ``receiver``) and
``fault_report`` (``tests/faults/report.py``: the closing table).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.fakes.webhook_receiver import Receiver
from tests.faults.report import Record
from tests.faults.stack import FaultStack, fault_stack_for

HERE = Path(__file__).parent
CASE_TIMEOUT = 180


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    grouped = config.pluginmanager.hasplugin("xdist")
    for item in items:
        if HERE not in item.path.parents:
            continue
        item.add_marker(pytest.mark.faults)
        if "db_backend" in getattr(item, "fixturenames", ()):  # real services and processes
            item.add_marker(pytest.mark.integration)
        # A safety net well above a case's ~30 s; a test's own timeout mark comes first.
        item.add_marker(pytest.mark.timeout(CASE_TIMEOUT))
        if grouped:
            item.add_marker(pytest.mark.xdist_group("faults"))


@pytest.fixture
def fault_stack(
    db_backend: str,
    client: TestClient,
    account: Account,
    receiver: Receiver,
    tmp_path: Path,
    fault_report: Record,
) -> Iterator[FaultStack]:
    """Its :meth:`~FaultStack.finish` puts the case's row in the closing table."""
    with fault_stack_for(
        db_backend, client, account, receiver, tmp_path, record=fault_report
    ) as stack:
        yield stack
