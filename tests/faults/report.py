"""The fault suite's closing table: every case records one :class:`Tally`, and the end of
the session prints them all (``pytest_terminal_summary``), whichever test file the case is
in and whether it passed.

A tally travels on the test's report (``user_properties``), so the table is whole under
xdist too: the workers run the cases, the controller prints. Registered for the whole
suite from ``tests/conftest.py`` (``pytest_plugins``); it imports nothing of Herald, so it
loads before the suite's conftest points Herald's settings at the test services.

The columns:

- **lost**: never reached the receiver, yet not settled as ``failed`` or ``unconfirmed``
  (Herald believes it went out, or it is still waiting).
- **twice**: a post that reached the receiver as a new post more than once (under two
  idempotency keys, or a key the receiver accepted as new twice).
- **resent**: POSTs with a key the receiver had already seen (reported: resending with the
  same key after a crash is how a delivery recovers).
- **would-dup**: of those, the ones answered 200 after the key had been accepted: what a
  platform without idempotency keys would have posted a second time.
- **stuck**: not settled (published, failed, unconfirmed, cancelled) when the case ended.

lost, twice and stuck must be 0 (:meth:`Tally.assert_clean`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

import pytest

PROPERTY = "herald_fault_tally"
MARKER = "faults: the fault suite (real worker, scheduler and Redis; faults injected on purpose)"


@dataclass(frozen=True)
class Tally:
    case: str
    backend: str
    n: int
    published: int
    failed: int
    unconfirmed: int
    lost: int
    twice: int
    resent: int
    would_dup: int
    stuck: int
    max_attempt: int
    seconds: float
    note: str = ""

    def assert_clean(self, *, all_published: bool = False) -> None:
        """lost, twice and stuck are 0; with ``all_published``, every delivery went out."""
        problems = {k: getattr(self, k) for k in ("lost", "twice", "stuck") if getattr(self, k)}
        if all_published and self.published != self.n:
            problems["not published"] = self.n - self.published
        assert not problems, f"{self.case} [{self.backend}]: {problems}; {self.row()}"

    def row(self) -> str:
        return " | ".join(str(getattr(self, f.name)) for f in fields(self))


Record = Callable[[Tally], None]


@pytest.fixture
def fault_report(request: pytest.FixtureRequest) -> Record:
    """``fault_report(tally)``: put this case's row in the closing table. Call it before
    asserting, so a failing case shows its numbers too."""

    def record(tally: Tally) -> None:
        request.node.user_properties.append((PROPERTY, asdict(tally)))

    return record


class FaultTable:
    """Collects the tallies from the test reports (in the process that prints)."""

    def __init__(self) -> None:
        self.rows: list[tuple[dict[str, Any], str]] = []

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == PROPERTY and isinstance(value, dict):
                self.rows.append((value, report.outcome))

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.rows:
            return
        terminalreporter.write_sep("=", "fault suite: lost / delivered twice / stuck")
        for line in self.lines():
            terminalreporter.write_line(line)

    def lines(self) -> Iterator[str]:
        header = [
            "case",
            "db",
            "N",
            "published",
            "failed",
            "unconf.",
            "lost",
            "twice",
            "resent",
            "would-dup",
            "stuck",
            "max att.",
            "s",
            "result",
            "note",
        ]
        table = [header]
        for row, outcome in sorted(self.rows, key=lambda r: (r[0]["case"], r[0]["backend"])):
            table.append(
                [
                    row["case"],
                    row["backend"],
                    *(
                        str(row[k])
                        for k in (
                            "n",
                            "published",
                            "failed",
                            "unconfirmed",
                            "lost",
                            "twice",
                            "resent",
                            "would_dup",
                            "stuck",
                            "max_attempt",
                        )
                    ),
                    f"{row['seconds']:.1f}",
                    outcome,
                    row.get("note", ""),
                ]
            )
        widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
        for r in table:
            yield (
                "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + "  " + r[-1]
            )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    config.pluginmanager.register(FaultTable(), "herald-fault-table")
