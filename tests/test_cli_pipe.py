"""The command line stops quietly when its reader goes away (``python -m digitize show CODE | head``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITIZE_")}
    return {**env, "PYTHONPATH": str(REPO), "DIGITIZE_CATALOG_URL": f"sqlite:///{tmp_path / 'catalog.db'}",
            "DIGITIZE_ARCHIVE_URL": f"file://{tmp_path / 'archive'}"}


def test_a_closed_pipe_ends_the_command_without_a_traceback(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "digitize", "db", "upgrade"], cwd=REPO, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the command writes its first line
    _, errors = proc.communicate(timeout=300)
    assert proc.returncode == 141, errors  # 128 + SIGPIPE, as a shell reports a command killed by it
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors


def test_with_its_reader_the_command_prints_as_before(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "digitize", "db", "upgrade"], cwd=REPO, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout == "catalog schema is up to date\n", done.stdout + done.stderr
