"""CPU per request through Herald's guarded HTTP client, with and without the cookieless
``httpx.Cookies`` subclass (``herald.core.http._Cookieless``).

Both variants keep no cookies (the jar is ``_NoCookies``); the subclass also skips
httpx's ``Set-Cookie`` handling, which wraps every answer and its request in urllib
objects for the jar. The receiver runs in its own process and sets a cookie on every
answer, as many platforms' edges do.

    python -m bench.http_cookies --n 300 --rounds 15

Rounds alternate the variants (many short rounds: the machine is shared and noisy); the
result is the client process's CPU per request (``time.process_time``), median over the
rounds, and the ratio plain / cookieless.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from herald.core.http import GuardedClient, _NoCookies, make_client


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the connection is not what is measured

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"id":"1","ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Set-Cookie", "__cf_bm=abc123; Path=/; HttpOnly; Secure; SameSite=None")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve(port: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    port.value = server.server_address[1]
    server.serve_forever()


class _PlainJarClient(GuardedClient):
    """The guarded client with httpx's own Cookies over the same jar that keeps nothing."""

    @property
    def cookies(self) -> httpx.Cookies:
        return httpx.Cookies(_NoCookies())

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        pass


def _cpu_per_request(client: httpx.Client, url: str, n: int) -> float:
    for _ in range(20):  # warm the pool and the caches
        client.post(url, json={"text": "warm"})
    start = time.process_time()
    for i in range(n):
        client.post(url, json={"text": f"post {i}"})
    return (time.process_time() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    port = multiprocessing.Value("i", 0)
    server = multiprocessing.Process(target=_serve, args=(port,), daemon=True)
    server.start()
    while not port.value:
        time.sleep(0.01)
    url = f"http://127.0.0.1:{port.value}/hook"
    cookieless = make_client(allowed=["127.0.0.0/8"])
    plain = make_client(allowed=["127.0.0.0/8"])
    plain.__class__ = _PlainJarClient  # same transport and settings, httpx's own Cookies
    results: dict[str, list[float]] = {"cookieless": [], "plain jar": []}
    try:
        for _ in range(args.rounds):
            results["cookieless"].append(_cpu_per_request(cookieless, url, args.n))
            results["plain jar"].append(_cpu_per_request(plain, url, args.n))
    finally:
        server.terminate()
    for name, values in results.items():
        spread = f"{min(values) * 1e6:.0f}-{max(values) * 1e6:.0f}"
        print(f"{name:>10}: {statistics.median(values) * 1e6:.0f} µs CPU/request ({spread})")
    ratios = [p / c for p, c in zip(results["plain jar"], results["cookieless"], strict=True)]
    medians = statistics.median(results["plain jar"]) / statistics.median(results["cookieless"])
    per_round = statistics.median(ratios)
    print(f"plain / cookieless: {medians:.3f} (of the medians; median per round {per_round:.3f})")


if __name__ == "__main__":
    main()
