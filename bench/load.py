"""The load generator: a process of its own that drives the server over loopback.

    python -m bench.load SPEC.json   ->   one JSON object on standard output

Each client is a thread with its own HTTP/1.1 connection, kept alive when the server allows
it (gunicorn's sync workers close after each response; http.client then reconnects, which is
what a real client of such a server pays too). Request bodies are serialised beforehand by
the runner, so the generator spends its time on the wire, not on building JSON.

Spec: {"address": "127.0.0.1:8000", "key": "rk_...", "path": "/api/v1/lookups",
       "bodies_file": "...json", "items": [items per body], "clients": 8,
       "mode": "once" | "loop", "duration": s, "warmup": s, "stop_file": path | null}
- once: every body is sent once, the clients sharing the list; the rate is items / wall time.
- loop: the clients cycle through the bodies until `duration` has passed (or `stop_file`
  appears); requests that start during the first `warmup` seconds are not counted, and when
  `window_file` holds [t0, t1] (Unix times) only requests started within it are. It may hold
  {"name": [t0, t1], ...} instead: the first window gives the figures, and every window's
  figures come under "windows" (the runner compares the load during a job with the load just
  before it).
"""

import http.client
import itertools
import json
import sys
import threading
import time
from pathlib import Path

RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class Client:
    def __init__(self, address: str, key: str) -> None:
        host, _sep, port = address.rpartition(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=120)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        for attempt in (1, 2):
            try:
                self.conn.request("POST", path, body, self.headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except RETRYABLE:  # the server closed a kept-alive connection: reconnect once
                self.conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


def run(spec: dict) -> dict:
    bodies = [body.encode() for body in json.loads(Path(spec["bodies_file"]).read_text())]
    items = spec["items"]
    mode, clients = spec["mode"], spec["clients"]
    stop_file = Path(spec["stop_file"]) if spec.get("stop_file") else None
    lock = threading.Lock()
    queue = iter(range(len(bodies))) if mode == "once" else itertools.cycle(range(len(bodies)))
    results: list[tuple] = []  # (start, latency, status, items, start as Unix time)
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)
    deadline = [0.0]

    def next_index():
        with lock:
            return next(queue, None)

    def worker():
        client = Client(spec["address"], spec["key"])
        barrier.wait()
        local = []
        while True:
            now = time.perf_counter()
            if mode == "loop" and (now >= deadline[0] or (stop_file and stop_file.exists())):
                break
            index = next_index()
            if index is None:
                break
            started, wall = time.perf_counter(), time.time()
            try:
                status, payload = client.post(spec["path"], bodies[index])
            except OSError as exc:
                status, payload = 0, str(exc).encode()
            local.append((started, time.perf_counter() - started, status, items[index], wall))
            if status != 200 and len(errors) < 5:
                errors.append(f"{status}: {payload[:300]!r}")
        with lock:
            results.extend(local)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    deadline[0] = began + spec.get("duration", 0) + spec.get("warmup", 0)
    for thread in threads:
        thread.join()
    ended = time.perf_counter()
    counted_from = began + spec.get("warmup", 0) if mode == "loop" else began
    counted = [r for r in results if r[0] >= counted_from]
    window = (max(r[0] + r[1] for r in counted) - counted_from) if counted else 0.0
    if mode == "once":
        window = ended - began
    window_file = Path(spec["window_file"]) if spec.get("window_file") else None
    windows = json.loads(window_file.read_text()) if window_file and window_file.exists() else None
    if isinstance(windows, list):
        windows = {"window": windows}
    if windows:  # only requests started within [t0, t1] (wall)
        named = {
            name: figures([r for r in results if t0 <= r[4] <= t1], t1 - t0, errors)
            for name, (t0, t1) in windows.items()
        }
        return {**next(iter(named.values())), "windows": named}
    return figures(counted, window, errors)


def figures(counted: list[tuple], window: float, errors: list[str]) -> dict:
    latencies = sorted(r[1] * 1000 for r in counted)
    ok = [r for r in counted if r[2] == 200]
    return {
        "requests": len(counted),
        "errors": len(counted) - len(ok),
        "error_sample": errors,
        "seconds": window,
        "items": sum(r[3] for r in ok),
        "rate": sum(r[3] for r in ok) / window if window else 0.0,
        "requests_per_s": len(ok) / window if window else 0.0,
        "p50_ms": percentile(latencies, 0.50),
        "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else 0.0,
        "mean_ms": sum(latencies) / len(latencies) if latencies else 0.0,
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    json.dump(run(spec), sys.stdout)


if __name__ == "__main__":
    main()
