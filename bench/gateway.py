"""Lookup rate through the member gateway, against the Python client doing the same work.

    python bench/gateway.py                                  # a fake registry, no Django
    python bench/gateway.py --registry http://127.0.0.1:8000 --api-key KEY   # a real one

Both sides do the same work on the same registry: canonicalise, blind, evaluate (with proof
checks), finalize and look up fresh identifiers (never seen before, so no token cache helps
either side), ``--batch`` identifiers per lookup, from ``--callers`` threads at once. The
in-process side shares one ``Client`` and ``TokenCache`` between its threads; the gateway side
is ``registry-client serve`` in its own process, called over loopback HTTP/1.1 keep-alive
connections, one per thread. Rounds alternate which side goes first; the figure is the median
ratio gateway / in-process of identifiers looked up per second.

Without ``--registry`` the registry is the client tests' fake (``client/tests/conftest.py``:
real VOPRF evaluation and proofs, in-memory lookups) in a process of its own, so that it
competes with neither side for the interpreter lock. The fake answers faster than the real
registry, so the gateway's own overhead weighs more there: it is the harder test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "client"
sys.path[:0] = [str(CLIENT), str(CLIENT / "tests")]

from registry_client.bulk import TokenCache  # noqa: E402
from registry_client.canonical import canonicalize  # noqa: E402
from registry_client.client import Client  # noqa: E402


def serve_fake(port: int) -> None:
    """The client tests' fake registry, alone in this process."""
    from http.server import ThreadingHTTPServer

    import conftest  # client/tests/conftest.py
    from registry_client import oprf

    sk, pk = oprf.derive_key_pair(conftest.TEST_SEED, conftest.TEST_INFO)
    state = conftest.FakeRegistry(sk=sk, pk=pk)
    state.url = f"http://127.0.0.1:{port}"
    state.requests = _Forgetful()  # a long run would otherwise keep every request
    handler = type("Handler", (conftest._Handler,), {"registry": state})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    server.serve_forever()


class _Forgetful(list):
    def append(self, item: object) -> None:
        pass


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()  # noqa: S310 - loopback
            return
        except urllib.error.HTTPError:
            return  # it answers (401/404 are fine)
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def phones(start: int, count: int) -> list[str]:
    return [f"137{n:08d}" for n in range(start, start + count)]


def batches(values: list[str], size: int) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def run_threads(work: list[list[str]], callers: int, one) -> float:
    """Identifiers per second over all batches, ``callers`` threads taking batches in turn."""
    lock = threading.Lock()
    queue = list(reversed(work))
    errors: list[BaseException] = []

    def worker() -> None:
        state: dict = {}
        while True:
            with lock:
                if not queue:
                    return
                batch = queue.pop()
            try:
                one(batch, state)
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)
                return

    threads = [threading.Thread(target=worker) for _ in range(callers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return sum(len(batch) for batch in work) / elapsed


def in_process(client: Client, cache: TokenCache):
    def one(batch: list[str], _state: dict) -> None:
        items = [("phone", canonicalize("phone", value)) for value in batch]
        tokens = cache.tokens_for(items)
        identifiers = [{"kind": kind, "token": tokens[(kind, value)]} for kind, value in items]
        answer = client.lookup(identifiers, "loan_application")
        assert len(answer["results"]) == len(batch)

    return one


def through_gateway(port: int):
    def one(batch: list[str], state: dict) -> None:
        connection = state.get("connection")
        if connection is None:
            connection = state["connection"] = http.client.HTTPConnection("127.0.0.1", port)
        body = {
            "purpose": "loan_application",
            "identifiers": [{"kind": "phone", "value": value} for value in batch],
        }
        connection.request(
            "POST", "/v1/lookups", json.dumps(body), {"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200, answer
        assert len(answer["results"]) == len(batch)

    return one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", help="registry URL (default: the fake, started here)")
    parser.add_argument("--api-key", default=os.environ.get("REGISTRY_API_KEY"))
    parser.add_argument("--identifiers", type=int, default=3000, help="per side per round")
    parser.add_argument("--batch", type=int, default=10, help="identifiers per lookup")
    parser.add_argument("--callers", type=int, default=4, help="threads on each side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve-fake", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.serve_fake)
        return

    children: list[subprocess.Popen] = []
    try:
        url, api_key = args.registry, args.api_key
        if url is None:
            port = free_port()
            command = [sys.executable, __file__, "--serve-fake", str(port)]
            children.append(subprocess.Popen(command))
            url, api_key = f"http://127.0.0.1:{port}", "test-member-key"
            wait_for(url + "/", children[-1])
        if not api_key:
            parser.error("--api-key (or REGISTRY_API_KEY) is needed with --registry")
        gateway_port = free_port()
        env = {
            **os.environ,
            "REGISTRY_URL": url,
            "REGISTRY_API_KEY": api_key,
            "PYTHONPATH": os.pathsep.join([str(CLIENT), os.environ.get("PYTHONPATH", "")]),
        }
        command = [sys.executable, "-m", "registry_client", "serve", "--port", str(gateway_port)]
        children.append(subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL))
        wait_for(f"http://127.0.0.1:{gateway_port}/healthz", children[-1])

        client = Client(url, api_key)
        cache = TokenCache(client, 100_000, ttl=3600)
        sides = {"in-process": in_process(client, cache), "gateway": through_gateway(gateway_port)}
        # Warm-up: the key document on both sides, connections, code paths.
        for one in sides.values():
            run_threads(batches(phones(9_000_000, 40), args.batch), args.callers, one)

        ratios, rates = [], {name: [] for name in sides}
        start = 0
        for number in range(args.rounds):
            order = list(sides) if number % 2 == 0 else list(reversed(sides))
            measured = {}
            for name in order:
                work = batches(phones(start, args.identifiers), args.batch)
                start += args.identifiers  # fresh values: no cache hit on either side
                measured[name] = run_threads(work, args.callers, sides[name])
                rates[name].append(measured[name])
            ratios.append(measured["gateway"] / measured["in-process"])
            print(
                f"round {number + 1}: in-process {measured['in-process']:,.0f}/s, "
                f"gateway {measured['gateway']:,.0f}/s, ratio {ratios[-1]:.2f}",
                flush=True,
            )
        summary = {
            "registry": "fake" if args.registry is None else "given",
            "batch": args.batch,
            "callers": args.callers,
            "identifiers_per_round": args.identifiers,
            "in_process_per_s": round(statistics.median(rates["in-process"])),
            "gateway_per_s": round(statistics.median(rates["gateway"])),
            "ratio_median": round(statistics.median(ratios), 3),
            "ratio_min": round(min(ratios), 3),
        }
        print(json.dumps(summary))
    finally:
        for child in children:
            child.terminate()
            child.wait(10)


if __name__ == "__main__":
    main()
