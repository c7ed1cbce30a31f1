"""The local S3 endpoint: serves real S3 over HTTP, frees its port on stop, runs standalone for the demo."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from digitize.archive.s3 import make_s3_client
from digitize.dev.s3server import DUMMY_CREDENTIALS, LocalS3Server

REPO = Path(__file__).resolve().parent.parent


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_serves_s3_on_loopback_and_refuses_connections_after_stop() -> None:
    server = LocalS3Server()
    with server:
        assert server.endpoint_url.startswith("http://127.0.0.1:")
        client = make_s3_client(server.endpoint_url, credentials=DUMMY_CREDENTIALS, max_attempts=1)
        client.create_bucket(Bucket="s3server-smoke")
        client.put_object(Bucket="s3server-smoke", Key="k", Body=b"v")
        assert client.get_object(Bucket="s3server-smoke", Key="k")["Body"].read() == b"v"
        port = server.port
    assert _refused(port), "the listening socket must be closed, or clients hang instead of failing fast"
    with pytest.raises(RuntimeError):
        _ = server.endpoint_url


def test_taken_port_fails_instead_of_hanging() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            LocalS3Server(taken.getsockname()[1]).start()


def test_standalone_process_writes_pidfile_and_stops_on_sigterm(tmp_path: Path) -> None:
    pidfile = tmp_path / "run" / "s3.pid"
    proc = subprocess.Popen(
        [sys.executable, "-m", "digitize.dev.s3server", "--port", "0", "--pidfile", str(pidfile)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().strip()  # printed once it accepts connections
        assert endpoint.startswith("http://127.0.0.1:")
        assert pidfile.read_text().strip() == str(proc.pid)
        client = make_s3_client(endpoint, credentials=DUMMY_CREDENTIALS, max_attempts=1)
        client.create_bucket(Bucket="standalone-smoke")
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["standalone-smoke"]
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert not pidfile.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_standalone_process_reports_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "digitize.dev.s3server", "--port", str(taken.getsockname()[1])],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1, result.stderr
    assert "s3server:" in result.stderr
