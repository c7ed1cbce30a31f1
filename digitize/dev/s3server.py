"""A local S3 endpoint (moto's server) for tests, the demo and Airflow runs on one machine.

moto speaks real S3 over HTTP, so the archive code is exercised through botocore exactly as
against MinIO or AWS. It keeps every object in memory: everything is gone when it stops.
All servers started in one process share moto's in-memory backend, so tests use distinct
bucket names.

In-process (tests)::

    with LocalS3Server() as server:
        client = make_s3_client(server.endpoint_url, credentials=DUMMY_CREDENTIALS)

Standalone (the Makefile starts it and stops it with SIGTERM)::

    python -m digitize.dev.s3server --port 9000 --pidfile var/s3.pid

It prints the endpoint URL on stdout once it accepts connections and removes the pid file on
exit. Clients need some credentials to sign requests; moto accepts any, so use the dummy ones
in :data:`DUMMY_CREDENTIALS` (``AWS_ACCESS_KEY_ID=testing``), never real ones.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Self

from moto.server import ThreadedMotoServer

HOST = "127.0.0.1"
DUMMY_CREDENTIALS: tuple[str, str] = ("testing", "testing")
"""Access key id and secret for moto, which accepts any; exported as ``AWS_*`` by the demo."""


class LocalS3Server:
    """moto's S3 server on 127.0.0.1, in a daemon thread of this process."""

    def __init__(self, port: int = 0, *, log_requests: bool = False) -> None:
        """``port=0`` lets the kernel choose a free port (no races between parallel test runs).

        Without ``log_requests`` werkzeug's per-request lines are silenced (they flood test output).
        """
        if not log_requests:
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._moto = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
        self._started = False
        self._port = port

    def start(self) -> Self:
        if not self._started:
            if self._port:
                _check_port_free(self._port)
            self._moto.start()
            self._port = self._moto.get_host_and_port()[1]
            self._started = True
        return self

    @property
    def port(self) -> int:
        if not self._started:
            raise RuntimeError("LocalS3Server is not started")
        return self._port

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        """Stop serving and close the listening socket, so clients get "connection refused"."""
        if not self._started:
            return
        self._moto.stop()
        # ThreadedMotoServer.stop() only leaves serve_forever(); without closing the socket the
        # kernel would keep accepting connections that nobody answers (clients hang until timeout).
        wsgi_server = getattr(self._moto, "_server", None)
        if wsgi_server is not None:
            wsgi_server.server_close()
        self._started = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _check_port_free(port: int) -> None:
    """Fail fast on a taken port: ThreadedMotoServer.start() would wait forever for its dead thread."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug does
        probe.bind((HOST, port))


def serve(port: int, pidfile: Path | None = None) -> None:
    """Run the server until SIGTERM/SIGINT; write and finally remove ``pidfile``."""
    done = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with LocalS3Server(port, log_requests=True) as server:
        if pidfile is not None:
            pidfile.parent.mkdir(parents=True, exist_ok=True)
            pidfile.write_text(f"{os.getpid()}\n", encoding="ascii")
        try:
            print(server.endpoint_url, flush=True)
            done.wait()
        finally:
            if pidfile is not None:
                pidfile.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m digitize.dev.s3server",
        description="Local S3 endpoint (moto, in memory) on 127.0.0.1 for the demo; stop it with SIGTERM.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: a free one, printed on stdout)")
    parser.add_argument("--pidfile", type=Path, default=None, help="write this process's pid here while serving")
    args = parser.parse_args(argv)
    try:
        serve(args.port, args.pidfile)
    except OSError as exc:  # port taken, pidfile folder not writable
        print(f"s3server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
