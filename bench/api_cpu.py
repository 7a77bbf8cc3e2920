"""CPU per request of the API's hot routes, in process: what one answer costs the API.

    uv run python -m bench.api_cpu                        # SQLite, 300 requests per route
    uv run python -m bench.api_cpu --profile /tmp/prof    # also a cProfile of each route

The app is Herald's own (``create_app``) on a real database (migrated, SQLite or
PostgreSQL) and Redis (the publish route sends its Celery message after commit; no worker
runs, the messages stay queued). Requests go one at a time through httpx's ASGI
transport, so there is no network and no HTTP parsing: the numbers are the app's CPU
(every thread of this process, ``time.process_time``) divided by the requests, best of
``--rounds``, after a warm-up. ``api_latency`` measures the whole server under load; this
says where its budget goes (100 req/s at N ms each = N/10 of a core).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._harness import Receiver, add_stack_arguments, machine_info, run_main, source_info
from bench.api_latency import create_fixtures
from bench.publish_throughput import herald_stack

NAME = "api_cpu"
ROUTES = ("publish", "list", "get")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api_cpu",
        description="CPU ms per request of the API's hot routes, in process (ASGI transport).",
    )
    parser.add_argument("--requests", type=int, default=300, help="Per route and round (300).")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds; the best counts (3).")
    parser.add_argument("--posts", type=int, default=200, help="Posts to list over (200).")
    parser.add_argument("--profile", type=Path, help="Write a cProfile of each route here.")
    add_stack_arguments(
        parser, broker_db=12, timeout=600, workdir_holds="the SQLite file", worker=False
    )
    args = parser.parse_args(argv)
    if args.requests < 1 or args.rounds < 1:
        parser.error("--requests and --rounds must be at least 1")
    return args


async def _measure(
    app: Any, fixtures: dict[str, Any], route: str, count: int, profile: cProfile.Profile | None
) -> tuple[float, float]:
    """(CPU ms, wall ms) per request of ``count`` requests of ``route``, one at a time."""
    headers = {"Authorization": f"Bearer {fixtures['token']}"}
    body = json.dumps({"channel_ids": [fixtures["channel_id"]]}).encode()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://herald", headers=headers
    ) as client:
        readable = fixtures["readable"]
        posts = [fixtures["fresh"].pop() for _ in range(count)] if route == "publish" else []
        if profile is not None:
            profile.enable()
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(count):
            if route == "publish":
                response = await client.post(
                    f"/api/v1/posts/{posts[i]}/publish",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
            elif route == "list":
                response = await client.get("/api/v1/posts")
            else:
                response = await client.get(f"/api/v1/posts/{readable[i % len(readable)]}")
            if response.status_code not in (200, 202):
                raise RuntimeError(f"{route}: {response.status_code} {response.text[:300]}")
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if profile is not None:
            profile.disable()
    return cpu * 1000 / count, wall * 1000 / count


def run(args: argparse.Namespace) -> list[str]:
    machine, source = machine_info(), source_info()
    with contextlib.ExitStack() as stack:
        _workdir, _url, _env = herald_stack(args, stack, "ac-")
        receiver = stack.enter_context(Receiver(_workdir))
        warm = 20
        publishes = args.requests * (args.rounds + (1 if args.profile else 0)) + warm
        fixtures = create_fixtures(receiver, publishes, max(args.posts, args.requests))
        from herald.app import create_app

        app = create_app()
        results: dict[str, dict[str, float]] = {}
        for route in ROUTES:
            asyncio.run(_measure(app, fixtures, route, warm, None))
        for route in ROUTES:
            best_cpu = best_wall = float("inf")
            for _ in range(args.rounds):
                cpu, wall = asyncio.run(_measure(app, fixtures, route, args.requests, None))
                best_cpu, best_wall = min(best_cpu, cpu), min(best_wall, wall)
            results[route] = {"cpu_ms": round(best_cpu, 2), "wall_ms": round(best_wall, 2)}
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            # cProfile sees one thread: the sync parts run on the event loop's thread here
            # (anyio's to_thread.run_sync called inline), for the profile only.
            import anyio.to_thread

            async def inline(func: Any, *call_args: Any, **_kwargs: Any) -> Any:
                return func(*call_args)

            setattr(anyio.to_thread, "run_sync", inline)  # noqa: B010 - a stand-in, typed loosely
            for route in ROUTES:
                profile = cProfile.Profile()
                asyncio.run(_measure(app, fixtures, route, args.requests, profile))
                profile.dump_stats(args.profile / f"{route}.prof")
                out = io.StringIO()
                pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(60)
                (args.profile / f"{route}.txt").write_text(out.getvalue())
    print(f"API CPU per request, in process ({args.database}, best of {args.rounds} rounds of "
          f"{args.requests})")  # fmt: skip
    print(f"{'route':<8} {'CPU ms':>8} {'wall ms':>8}")
    for route, row in results.items():
        print(f"{route:<8} {row['cpu_ms']:>8.2f} {row['wall_ms']:>8.2f}")
    print(f"machine: load {machine['loadavg_at_start'][0]}; source: {source['describe']}")
    return []


def main(argv: list[str] | None = None) -> int:
    return run_main(NAME, parse_args, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
