"""Cookie cost: what reading ``Set-Cookie`` costs per answer, side by side: httpx's own
cookie handling (into a jar that keeps nothing, or a plain jar) against the guarded
client's cookieless one that skips it (``herald.core.http``).

    uv run python -m bench.cookie_cost

The answer is a platform's usual JSON 201, with and without a ``Set-Cookie`` header;
each way is timed over ``--calls`` answers in alternating blocks, median CPU µs per answer.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from herald.core.http import _Cookieless, _NoCookies

WAYS: dict[str, Callable[[], httpx.Cookies]] = {
    "cookieless (Herald)": _Cookieless,
    "httpx, jar keeping nothing": lambda: httpx.Cookies(_NoCookies()),
    "httpx, plain jar": httpx.Cookies,
}


def answer(with_cookie: bool) -> httpx.Response:
    headers = {"content-type": "application/json", "x-request-id": "abc"}
    if with_cookie:
        headers["set-cookie"] = "session=0123456789abcdef; Path=/; HttpOnly; Secure"
    request = httpx.Request("POST", "https://platform.example/api/v1/statuses")
    return httpx.Response(201, headers=headers, json={"id": "1"}, request=request)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cookie_cost", description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--block", type=int, default=1_000)
    args = parser.parse_args(argv)
    print(f"{'answer':<16} " + " ".join(f"{way:>28}" for way in WAYS) + "  (CPU µs per answer)")
    for with_cookie in (False, True):
        response = answer(with_cookie)
        samples: dict[str, list[float]] = {way: [] for way in WAYS}
        for block in range(args.calls // args.block):
            for way in WAYS if block % 2 == 0 else reversed(WAYS):
                cookies = WAYS[way]()
                started = time.thread_time()
                for _ in range(args.block):
                    cookies.extract_cookies(response)
                samples[way].append(1e6 * (time.thread_time() - started) / args.block)
        label = "with Set-Cookie" if with_cookie else "no Set-Cookie"
        medians = " ".join(f"{statistics.median(samples[way]):28.2f}" for way in WAYS)
        print(f"{label:<16} {medians}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
