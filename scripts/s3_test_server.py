#!/usr/bin/env python3
"""An S3-compatible server for the storage contract tests (moto, from PyPI).

Usage: s3_test_server.py BUCKET

Listens on 127.0.0.1 at a port the OS picks, creates BUCKET, prints the port
on one line of stdout, then serves until its stdin closes (the test that
started it ended or died) or it is killed.

It serves one request at a time: moto checks S3 preconditions (If-None-Match,
If-Match) and then stores, without a lock, so a threaded server could let two
conditional writers both pass the check. One request at a time makes every
request atomic, as real S3 is; the contract tests then exercise our adapter's
protocol (headers, status codes, error mapping) against an independent S3
implementation. Werkzeug speaks HTTP/1.0 when not threaded, so every
connection closes after its response and no client holds the server.

`.ci/run` installs moto into a virtualenv and points OMNIGRAPH_MOTO_PYTHON at
its interpreter; see docs/storage.md.
"""

import os
import sys
import threading
import urllib.request

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


class QuietHandler(MotoRequestHandler):
    """Moto's handler without a log line per request."""

    def log_request(self, *args, **kwargs) -> None:  # noqa: D102
        pass


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: s3_test_server.py BUCKET")
    bucket = sys.argv[1]
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        "127.0.0.1", 0, app, threaded=False, request_handler=QuietHandler
    )
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()

    request = urllib.request.Request(f"http://127.0.0.1:{port}/{bucket}", method="PUT")
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 200:
            sys.exit(f"creating bucket {bucket}: HTTP {response.status}")

    print(port, flush=True)
    # Serve until the parent closes our stdin (or dies and the pipe closes).
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    main()
