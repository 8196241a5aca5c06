#!/usr/bin/env python3
"""A webhook receiver for keel's integration tests: listens on loopback, answers each POST with a scripted status and records every request (headers, raw body, arrival time) under a folder."""

import argparse
import http.server
import json
import os
import socket
import sys
import threading
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dir", required=True, help="folder for requests.jsonl, body-N files and port")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1 or ::1)")
    p.add_argument("--fail", type=int, default=0, help="answer the first N requests with --fail-status")
    p.add_argument("--fail-status", type=int, default=500)
    p.add_argument("--status", type=int, default=200, help="the answer after the failures")
    p.add_argument("--retry-after", default="", help="a Retry-After header sent with failures")
    p.add_argument("--delay-ms", type=int, default=0, help="wait this long before answering")
    p.add_argument("--max-seconds", type=int, default=600,
                   help="exit after this long, so a test that died cannot leave it running")
    return p.parse_args()


class Receiver(http.server.BaseHTTPRequestHandler):
    """Records each request, then answers; the status file in --dir, when present, overrides the script."""

    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    count = 0
    opts = None

    def log_message(self, fmt, *args):  # quiet: the test reads requests.jsonl
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        now = time.time()
        opts = Receiver.opts
        with Receiver.lock:
            Receiver.count += 1
            n = Receiver.count
            status_file = os.path.join(opts.dir, "status")
            if os.path.exists(status_file):
                with open(status_file, encoding="utf-8") as f:
                    status = int(f.read().strip() or "200")
            elif n <= opts.fail:
                status = opts.fail_status
            else:
                status = opts.status
            with open(os.path.join(opts.dir, f"body-{n}"), "wb") as f:
                f.write(body)
            record = {
                "n": n,
                "time": now,
                "path": self.path,
                "status": status,
                "headers": {k.lower(): v for k, v in self.headers.items()},
            }
            with open(os.path.join(opts.dir, "requests.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        if opts.delay_ms > 0:
            time.sleep(opts.delay_ms / 1000.0)
        answer = b'{"received":true}' if 200 <= status < 300 else b'{"error":"scripted failure"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        if status >= 300 and opts.retry_after:
            self.send_header("Retry-After", opts.retry_after)
        self.end_headers()
        self.wfile.write(answer)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def main():
    opts = parse_args()
    os.makedirs(opts.dir, exist_ok=True)
    Receiver.opts = opts
    if ":" in opts.host:
        Server.address_family = socket.AF_INET6
    server = Server((opts.host, 0), Receiver)
    port = server.server_address[1]
    tmp = os.path.join(opts.dir, "port.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{port}\n")
    os.replace(tmp, os.path.join(opts.dir, "port"))
    stopper = threading.Timer(opts.max_seconds, server.shutdown)
    stopper.daemon = True
    stopper.start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
