"""Command-line start-up and `herald up`'s idle memory.

    uv run python -m bench.cli_startup                         # SQLite, 7 runs each
    uv run python -m bench.cli_startup --database postgresql --runs 11 --idle 20
    git archive main src | tar -x -C /tmp/before    # then, for a change's before/after:
    uv run python -m bench.cli_startup --skip-up --baseline-src /tmp/before/src

Why: a command a person types should answer at once (issue 21: ≤ 0.3 s for ``herald
--help`` and simple commands), and ``herald up`` on a small machine should stay small
while it waits (≤ 400 MB for all its processes together).

1. **Start-up.** Each command runs ``--runs`` times after one untimed warm-up run (which
   also writes the byte-code caches: a ``PYTHONDONTWRITEBYTECODE`` in this environment is
   dropped for the children, since an installed Herald has its caches); the table shows
   the median wall time, the median CPU time (user + system, from ``wait4``: less
   sensitive than wall time to what else the machine runs) and the ratio of each to
   ``python -c pass`` measured in the same run. The database holds one user, so ``post
   list`` and ``channel list`` do their real work (an empty list). With
   ``--baseline-src DIR`` each command is also run with Herald's package taken from
   ``DIR`` (first on ``PYTHONPATH``), its runs alternating with this tree's, so a change's
   before and after meet the same machine load; the table then compares the two.
2. **Idle memory.** ``herald up`` starts in a new data directory on a free port, with its
   embedded Redis (what a person gets), once per ``--layouts`` (``HERALD_UP_LAYOUT``:
   compact, the default, and split); once ``/api/v1/health`` answers 200 it is left
   alone for ``--idle`` seconds, then every process in its tree is read from /proc: RSS
   (what ``ps`` shows; pages a prefork pool shares with its parent count in each) and PSS
   (shared pages divided among their sharers: the sum is what the tree really costs).
   The target is on the summed RSS, the stricter of the two.

Writes ``cli_startup.svg/.json`` (start-up) and ``up_memory.svg/.json`` (memory by
process) under ``--results-dir``, each also with the database in its name.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._charts import PartBar, parts_chart_svg
from bench._harness import (
    BenchError,
    ManagedProcess,
    add_stack_arguments,
    child_env,
    machine_info,
    new_workdir,
    postgres_database,
    run_main,
    source_info,
    wait_until,
    write_outputs,
)

# Issue 21's targets.
STARTUP_TARGET = 0.3  # seconds, wall, for --help and simple commands
MEMORY_TARGET_MB = 400.0  # all of `herald up`'s processes, idle

BASELINE = "python -c pass"
COMMANDS: dict[str, list[str]] = {
    BASELINE: ["-c", "pass"],
    "herald --help": ["-m", "herald", "--help"],
    "herald post --help": ["-m", "herald", "post", "--help"],
    "herald channel list": ["-m", "herald", "channel", "list"],
    "herald post list": ["-m", "herald", "post", "list"],
}
COLORS = {"baseline": "#9e9e9e", "help": "#4c72b0", "database": "#dd8452"}
LAYOUTS = ("compact", "split")  # HERALD_UP_LAYOUT
LAYOUT_COLORS = {"compact": "#4c72b0", "split": "#dd8452"}
BEFORE = "#d9d9d9"  # --baseline-src's bars


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="Timed runs of each command.")
    parser.add_argument(
        "--idle", type=float, default=10.0, help="Seconds `herald up` idles before reading."
    )
    parser.add_argument("--skip-up", action="store_true", help="Only the start-up part.")
    parser.add_argument(
        "--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS),
        help="`herald up` layouts whose idle memory is measured (both).",
    )  # fmt: skip
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="A `src` folder holding another Herald (e.g. main's, from `git archive`): "
        "each command is timed with it too, runs alternating, before/after side by side.",
    )
    add_stack_arguments(
        parser,
        broker_db=11,
        timeout=600.0,
        workdir_holds="the data directory and `herald up`'s logs",
        worker=False,
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.idle < 0:
        parser.error("--idle must not be negative")
    if args.baseline_src is not None and not (args.baseline_src / "herald").is_dir():
        parser.error(f"--baseline-src {args.baseline_src}: no herald package in it")
    return args


# --- start-up ---------------------------------------------------------------------------


@dataclass
class Timing:
    command: str
    wall: list[float]
    cpu: list[float]

    @property
    def wall_median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(wall s, CPU s, exit code) of one run, its output discarded."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    errors = proc.stderr.read().decode(errors="replace").strip()  # EOF: it is ending
    proc.stderr.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise BenchError(f"`{' '.join(argv[1:])}` exited {proc.returncode}: {errors}")
    return wall, usage.ru_utime + usage.ru_stime, proc.returncode


def time_commands(
    env: dict[str, str], runs: int, baseline_env: dict[str, str] | None = None
) -> tuple[list[Timing], list[Timing]]:
    """This tree's timings, and (with ``baseline_env``) the baseline tree's, measured in
    alternation so that both see the same load."""
    timings, baseline = [], []
    for name, args in COMMANDS.items():
        argv = [sys.executable, *args]
        envs = [env] if baseline_env is None else [env, baseline_env]
        samples: list[tuple[list[float], list[float]]] = [([], []) for _ in envs]
        for each in envs:
            run_once(argv, each)  # warm-up: byte-code caches, the page cache
        for _ in range(runs):
            for each, (walls, cpus) in zip(envs, samples, strict=True):
                wall, cpu, _ = run_once(argv, each)
                walls.append(wall)
                cpus.append(cpu)
        timings.append(Timing(name, *samples[0]))
        if baseline_env is not None:
            baseline.append(Timing(name, *samples[1]))
    return timings, baseline


def prepare_data(env: dict[str, str]) -> None:
    """The schema and one user: the list commands then have a workspace to list."""
    for args in (
        ["migrate"],
        ["user", "create", "--email", "bench@example.com", "--password", "bench-password"],
    ):
        run_once([sys.executable, "-m", "herald", *args], env)


# --- idle memory ------------------------------------------------------------------------


@dataclass
class ProcessMemory:
    pid: int
    role: str
    rss_mb: float
    pss_mb: float


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _pss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rpartition(")")[2].split()[1])
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _role(pid: int, parent_role: str | None) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    words = [part.decode(errors="replace") for part in argv if part]
    if parent_role in ("herald worker", "worker pool child"):
        return "worker pool child"  # a fork: the same command line as its parent
    for name in ("up", "api", "worker", "beat"):
        if "herald" in words and name in words:
            return f"herald {name}" + (" --compact" if "--compact" in words else "")
    if words and "redis" in Path(words[0]).name:
        return "redis (embedded)"
    return Path(words[0]).name if words else "?"


def process_tree_memory(root: int) -> list[ProcessMemory]:
    """Every live process under ``root`` (included), with its RSS and PSS."""
    tree = _children()
    found: list[ProcessMemory] = []

    def visit(pid: int, parent_role: str | None) -> None:
        try:
            role = _role(pid, parent_role)
            rss, pss = _status_kb(pid, "VmRSS"), _pss_kb(pid)
        except OSError:
            return  # it ended while we looked
        found.append(ProcessMemory(pid, role, rss / 1024, pss / 1024))
        for child in tree.get(pid, []):
            visit(child, role)

    visit(root, None)
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def running_up(env: dict[str, str], workdir: Path, timeout: float) -> Iterator[ManagedProcess]:
    port = _free_port()
    up = ManagedProcess(
        "herald up",
        [sys.executable, "-m", "herald", "up", "--port", str(port)],
        workdir / "up.log",
        env=env,
    ).start()
    try:
        wait_until(
            lambda: _healthy(f"http://127.0.0.1:{port}/api/v1/health"),
            timeout,
            "`herald up` to answer healthy",
            interval=0.5,
            check=up.check,
        )
        yield up
    finally:
        up.stop(grace=20)


def measure_up(env: dict[str, str], workdir: Path, idle: float, layout: str) -> list[ProcessMemory]:
    with running_up({**env, "HERALD_UP_LAYOUT": layout}, workdir, timeout=180) as up:
        time.sleep(idle)  # idle: what a waiting `herald up` holds, not its start-up peak
        up.check()
        return process_tree_memory(up.pid)


# --- the run ----------------------------------------------------------------------------


def _verdict(timing: Timing) -> str:
    """The start-up target's verdict on a command (none for the baseline)."""
    if timing.command == BASELINE:
        return ""
    return "ok" if timing.wall_median <= STARTUP_TARGET else "OVER"


def startup_table(timings: list[Timing]) -> list[str]:
    base = timings[0]
    lines = [
        f"{'command':<22} {'wall ms':>9} {'CPU ms':>8} {'x baseline':>11} {'target':>8}",
    ]
    for timing in timings:
        ratio = timing.wall_median / base.wall_median
        lines.append(
            f"{timing.command:<22} {timing.wall_median * 1000:>9.0f} "
            f"{timing.cpu_median * 1000:>8.0f} {ratio:>11.1f} {_verdict(timing):>8}"
        )
    return lines


def comparison_table(before: list[Timing], after: list[Timing]) -> list[str]:
    lines = [
        f"{'command':<22} {'wall ms':>15} {'CPU ms':>15} {'after/before':>13} {'target':>7}",
        f"{'':<22} {'before':>7} {'after':>7} {'before':>7} {'after':>7} {'wall':>6} {'CPU':>6}",
    ]
    for old, new in zip(before, after, strict=True):
        lines.append(
            f"{new.command:<22} {old.wall_median * 1000:>7.0f} {new.wall_median * 1000:>7.0f} "
            f"{old.cpu_median * 1000:>7.0f} {new.cpu_median * 1000:>7.0f} "
            f"{new.wall_median / old.wall_median:>6.2f} {new.cpu_median / old.cpu_median:>6.2f} "
            f"{_verdict(new):>7}"
        )
    return lines


def _totals(processes: list[ProcessMemory]) -> tuple[float, float]:
    """The processes' summed RSS and PSS, MB."""
    return sum(p.rss_mb for p in processes), sum(p.pss_mb for p in processes)


def memory_table(processes: list[ProcessMemory]) -> list[str]:
    lines = [f"{'process':<22} {'pid':>8} {'RSS MB':>8} {'PSS MB':>8}"]
    for proc in processes:
        lines.append(f"{proc.role:<22} {proc.pid:>8} {proc.rss_mb:>8.1f} {proc.pss_mb:>8.1f}")
    rss, pss = _totals(processes)
    total = f"total ({len(processes)} processes)"
    lines.append(f"{total:<22} {'':>8} {rss:>8.1f} {pss:>8.1f}")
    return lines


def layouts_table(layouts: dict[str, list[ProcessMemory]]) -> list[str]:
    lines = [f"{'layout':<10} {'processes':>9} {'RSS MB':>8} {'PSS MB':>8} {'target':>7}"]
    for layout, processes in layouts.items():
        rss, pss = _totals(processes)
        ok = "ok" if rss <= MEMORY_TARGET_MB else "OVER"
        lines.append(f"{layout:<10} {len(processes):>9} {rss:>8.1f} {pss:>8.1f} {ok:>7}")
    return lines


# The Herald processes each layout must have (a missing one means the run measured a
# broken start, not a layout).
EXPECTED_ROLES = {
    "compact": {"herald api", "herald worker --compact"},
    "split": {"herald api", "herald worker", "herald beat"},
}


def write_memory(
    args: argparse.Namespace,
    machine: dict[str, Any],
    source: dict[str, Any],
    layouts: dict[str, list[ProcessMemory]],
) -> list[str]:
    """The memory chart and document; what went wrong, if anything."""
    problems = []
    totals = {layout: _totals(procs) for layout, procs in layouts.items()}
    summary = ", ".join(
        f"{name} RSS {rss:.0f} / PSS {pss:.0f}" for name, (rss, pss) in totals.items()
    )
    memory_svg = parts_chart_svg(
        "`herald up` idle memory, by process and layout",
        f"{args.database}; {source['describe']}; after {args.idle:g} s idle; MB: {summary}; "
        f"target ≤ {MEMORY_TARGET_MB:.0f} MB RSS",
        [
            PartBar(f"{layout}: {p.role} ({p.pid})", p.rss_mb, LAYOUT_COLORS[layout])
            for layout, procs in layouts.items()
            for p in procs
        ],
        [(f"{layout} layout, RSS", LAYOUT_COLORS[layout]) for layout in layouts],
        x_label="RSS MB",
        value_format="{:.0f} MB",
    )
    memory_document = {
        "machine": machine,
        "source": source,
        "database": args.database,
        "idle_seconds": args.idle,
        "target_rss_mb": MEMORY_TARGET_MB,
        "layouts": {
            layout: {
                "processes": [vars(p) for p in procs],
                "total_rss_mb": round(totals[layout][0], 1),
                "total_pss_mb": round(totals[layout][1], 1),
            }
            for layout, procs in layouts.items()
        },
    }
    write_outputs(args.results_dir, "up_memory", args.database, memory_svg, memory_document)
    for layout, procs in layouts.items():
        rss = totals[layout][0]
        if rss > MEMORY_TARGET_MB:
            print(f"note: `herald up` ({layout}) idles at {rss:.0f} MB RSS (target ≤ 400)")
        roles = {p.role for p in procs}
        if not EXPECTED_ROLES[layout] <= roles:
            problems.append(f"`herald up` ({layout}) lacks a process: {sorted(roles)}")
    return problems


def startup_chart(
    args: argparse.Namespace,
    machine: dict[str, Any],
    source: dict[str, Any],
    timings: list[Timing],
    baseline: list[Timing],
) -> str:
    subtitle = (
        f"{args.database}; {source['describe']}; {machine['cores']} cores ({machine['cpu']}), "
        f"load {machine['loadavg_at_start']}; median of {args.runs} runs after a warm-up; "
        f"target ≤ {STARTUP_TARGET * 1000:.0f} ms"
    )
    parts = [
        PartBar(
            t.command,
            t.wall_median * 1000,
            COLORS[
                "baseline"
                if t.command == BASELINE
                else "help"
                if t.command.endswith("--help")
                else "database"
            ],
        )
        for t in timings
    ]
    legend = [
        ("python -c pass", COLORS["baseline"]),
        ("help only", COLORS["help"]),
        ("reads the database", COLORS["database"]),
    ]
    if baseline:  # each command's before bar under its after bar
        parts = [
            bar
            for old, new in zip(baseline, parts, strict=True)
            for bar in (new, PartBar(f"{old.command} (before)", old.wall_median * 1000, BEFORE))
        ]
        legend.append((f"before ({args.baseline_src})", BEFORE))
    return parts_chart_svg(
        "Herald's command line: start-up",
        subtitle,
        parts,
        legend,
        x_label="wall ms (median)",
        value_format="{:.0f} ms",
    )


def run(args: argparse.Namespace) -> list[str]:
    problems: list[str] = []
    workdir = new_workdir("hbcli-")
    with contextlib.ExitStack() as stack:
        database_url = f"sqlite:///{workdir / 'herald.db'}"
        if args.database == "postgresql":
            database_url = stack.enter_context(postgres_database(args.pg_admin_url))
        env = child_env(data_dir=str(workdir), database_url=database_url)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        machine, source = machine_info(), source_info()
        prepare_data(env)

        baseline_env = None
        if args.baseline_src is not None:
            baseline_env = dict(env)
            baseline_env["PYTHONPATH"] = os.pathsep.join(
                [str(args.baseline_src.resolve()), env["PYTHONPATH"]]
            )
        timings, baseline = time_commands(env, args.runs, baseline_env)
        print(f"start-up, median of {args.runs} runs ({args.database}; {source['describe']})")
        for line in startup_table(timings):
            print(line)
        if baseline:
            print(f"\nbefore ({args.baseline_src}) and after (this tree), runs alternating")
            for line in comparison_table(baseline, timings):
                print(line)
        layouts: dict[str, list[ProcessMemory]] = {}
        for layout in [] if args.skip_up else args.layouts:
            layouts[layout] = processes = measure_up(env, workdir, args.idle, layout)
            print(f"\n`herald up` after {args.idle:g} s idle ({args.database}, {layout} layout)")
            for line in memory_table(processes):
                print(line)
        if len(layouts) > 1:
            print(f"\n`herald up` idle, side by side (target ≤ {MEMORY_TARGET_MB:.0f} MB RSS)")
            for line in layouts_table(layouts):
                print(line)
    if not args.keep_workdir:
        with contextlib.suppress(OSError):
            subprocess.run(["rm", "-rf", str(workdir)], check=False)

    svg = startup_chart(args, machine, source, timings, baseline)
    document: dict[str, Any] = {
        "machine": machine,
        "source": source,
        "database": args.database,
        "runs": args.runs,
        "startup": [_timing_json(t) for t in timings],
    }
    if baseline:
        document["baseline_src"] = str(args.baseline_src)
        document["baseline_startup"] = [_timing_json(t) for t in baseline]
    write_outputs(args.results_dir, "cli_startup", args.database, svg, document)
    for t in timings[1:]:
        if t.wall_median > STARTUP_TARGET:
            print(f"note: {t.command} took {t.wall_median * 1000:.0f} ms (target ≤ 300 ms)")

    if layouts:
        problems += write_memory(args, machine, source, layouts)
    return problems


def _timing_json(timing: Timing) -> dict[str, Any]:
    return {
        "command": timing.command,
        "wall_ms": [round(x * 1000, 1) for x in timing.wall],
        "cpu_ms": [round(x * 1000, 1) for x in timing.cpu],
        "wall_median_ms": round(timing.wall_median * 1000, 1),
        "cpu_median_ms": round(timing.cpu_median * 1000, 1),
    }


def main(argv: list[str] | None = None) -> int:
    return run_main("cli_startup", parse_args, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
