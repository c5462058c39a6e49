"""A real webhook receiver process for tests: verifies each delivery with the member-side
`registry_client.verify_webhook`, answers with the next status of its script and records
every request as one JSON line (id, type, verified, status answered; never the secret).

    python tests/webhook_receiver.py PORT LOG_FILE --statuses 500,500,200 --hang-first 30
The webhook secret comes from the environment (WEBHOOK_SECRET). The last status repeats.
"""

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "client"))

from registry_client import WebhookVerificationError, verify_webhook


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("log", type=Path)
    parser.add_argument("--statuses", default="200")
    parser.add_argument("--hang-first", type=float, default=0.0)
    args = parser.parse_args()
    statuses = [int(s) for s in args.statuses.split(",")]
    secret = os.environ["WEBHOOK_SECRET"]
    lock = threading.Lock()
    seen = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                number = seen[0]
                seen[0] += 1
            try:
                payload = verify_webhook(dict(self.headers), body, secret)
                verified = True
            except WebhookVerificationError:
                payload, verified = {}, False
            status = statuses[min(number, len(statuses) - 1)]
            record = {
                "n": number,
                "id": self.headers.get("webhook-id"),
                "type": payload.get("type"),
                "alert_type": (payload.get("data") or {}).get("type"),
                "verified": verified,
                "status": status,
                "at": time.time(),
            }
            with lock, args.log.open("a") as log:
                log.write(json.dumps(record) + "\n")
            if number == 0 and args.hang_first:
                time.sleep(args.hang_first)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
