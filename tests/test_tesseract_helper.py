"""The Tesseract helper process: loaded once and reused, one per forked process, its CPU counted, never orphaned."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import imagegen
import numpy as np
import pytest

from digitize.errors import ConfigurationError
from digitize.ocr import tesseract
from digitize.stageclock import StageTimes, recording, stage


def _page() -> np.ndarray:
    return imagegen.render_page(dpi=200)


def _helper_pids() -> set[int]:
    return {h.process.pid for h in tesseract._this_process_pool().idle}


def test_one_helper_reads_page_after_page_and_its_cpu_goes_to_the_stage() -> None:
    tesseract.stop_helpers()
    times = StageTimes()
    with recording(times), stage("ocr"):
        first = tesseract.recognize_tsv(_page(), dpi=200, language="vie", psm=3, timeout=60)
        pids = _helper_pids()
        second = tesseract.recognize_tsv(_page(), dpi=200, language="vie", psm=3, timeout=60)
    assert "Hạnh" in first and first == second
    assert len(pids) == 1 and _helper_pids() == pids, "the second page went to the same helper"
    assert times.cpu["ocr"] > 0.1, "the helper's CPU (model load and two pages) counts to the OCR stage"
    assert times.cpu["ocr"] < 20 * times.wall["ocr"]


def test_a_forked_child_starts_its_own_helper_and_leaves_its_parents_alone() -> None:
    tesseract.recognize_tsv(_page(), dpi=200, language="vie", psm=3, timeout=60)
    parent_helpers = _helper_pids()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            text = tesseract.recognize_tsv(_page(), dpi=200, language="vie", psm=3, timeout=60)
            os.write(write, f"{','.join(map(str, _helper_pids()))}|{'Hạnh' in text}".encode())
            tesseract.stop_helpers()
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1000).decode()
    os.close(read)
    os.waitpid(child, 0)
    child_helpers, read_ok = answer.split("|")
    assert read_ok == "True"
    assert {int(p) for p in child_helpers.split(",")}.isdisjoint(parent_helpers)
    assert _helper_pids() == parent_helpers, "the parent's helper is still there and idle"
    assert "Hạnh" in tesseract.recognize_tsv(_page(), dpi=200, language="vie", psm=3, timeout=60)


def test_helpers_end_with_their_process(tmp_path: Path) -> None:
    script = (
        "import imagegen\n"
        "from digitize.ocr import tesseract\n"
        "tesseract.recognize_tsv(imagegen.render_page(dpi=200), dpi=200, language='vie', psm=3, timeout=60)\n"
        "print(*(h.process.pid for h in tesseract._this_process_pool().idle))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True,
                          timeout=120)
    (pid,) = (int(p) for p in done.stdout.split())
    assert not Path(f"/proc/{pid}").exists(), "the helper was waited for when its process exited"


def test_missing_language_data_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tesseract.stop_helpers()
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))
    with pytest.raises(ConfigurationError) as caught:
        tesseract.recognize_tsv(_page(), dpi=200, language="vie", psm=3, timeout=60)
    assert str(tmp_path) in str(caught.value) and "tesseract-ocr-vie" in (caught.value.hint or "")
    tesseract.stop_helpers()


def test_an_idle_helper_killed_meanwhile_is_replaced_and_the_next_page_is_read() -> None:
    import signal
    import time

    tesseract.recognize_tsv(_page(), dpi=200, language="vie", psm=3, timeout=60)
    (dead,) = tesseract._this_process_pool().idle
    os.kill(dead.process.pid, signal.SIGKILL)  # as the OOM killer would, between two pages
    time.sleep(0.2)
    assert "Hạnh" in tesseract.recognize_tsv(_page(), dpi=200, language="vie", psm=3, timeout=60)
    assert dead.process.returncode == -signal.SIGKILL and dead.reaped
    assert dead.process.pid not in _helper_pids()
