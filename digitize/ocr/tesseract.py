"""Tesseract, loaded once per helper process and fed page after page (the only module that talks to it).

Running the ``tesseract`` CLI once per page paid its start and model load (~0.09 s of CPU) every page,
and Debian's 5.3 build reads a page ~25 % slower than the 5.5 engine tesserocr ships: the OCR stage
costs 38 % less CPU per page, and the development corpus reads as well (``bench/results/pipeline.md``,
run 16). A helper's whole life (start, model load, exit) costs ~0.12 s of CPU, once per process. The
engine runs in a helper process (:mod:`digitize.ocr.tesseract_server`), not in this one: a crash or a
hang in Tesseract then ends that helper, the page fails with OCR_FAILED and the next page gets a fresh
helper, as a crashing CLI did.

Helpers are pooled per process: a page takes an idle one or starts one, and gives it back, so page
threads each have their own and a worker keeps its one helper from document to document. A process
forked from one with helpers starts its own (the inherited pipes belong to the parent's). Helpers end
when their process exits (their stdin closes) and are waited for, so their CPU counts to the process
tree; while they run, each answer's CPU is counted to the stage that asked (:func:`stageclock.add_cpu`).
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing import util as mp_util
from pathlib import Path
from typing import Any

import numpy as np

from digitize.errors import ConfigurationError, OcrFailed
from digitize.ocr import tesseract_server
from digitize.stageclock import add_cpu, counted_already

SERVER = Path(tesseract_server.__file__)
"""The helper's script; run with this interpreter."""

DEFAULT_TESSDATA = Path("/usr/share/tesseract-ocr/5/tessdata")
"""Where Debian's ``tesseract-ocr-*`` packages put the language data; ``TESSDATA_PREFIX`` overrides it."""

START_TIMEOUT_SECONDS = 60.0
_INSTALL_HINT = "Install tesseract-ocr and tesseract-ocr-vie (apt), or point TESSDATA_PREFIX to the language data."


def tessdata() -> Path:
    """The folder of ``*.traineddata`` files: ``TESSDATA_PREFIX`` as Tesseract reads it, else Debian's."""
    prefix = os.environ.get("TESSDATA_PREFIX")
    if not prefix:
        return DEFAULT_TESSDATA
    path = Path(prefix)
    return path / "tessdata" if (path / "tessdata").is_dir() else path


@lru_cache(maxsize=1)
def tesseract_version() -> str:
    """The engine's version, e.g. ``5.5.4``; a missing engine is a configuration error, not a bad document."""
    try:
        import tesserocr
    except ImportError as exc:
        raise ConfigurationError(f"the Tesseract engine cannot be loaded ({exc})",
                                 hint="Install the requirements (make setup).") from exc
    match = re.search(r"tesseract\s+v?(\S+)", tesserocr.tesseract_version())
    return match.group(1) if match else "unknown"


@dataclass
class _Helper:
    """One running helper process and what of its CPU was already counted to stages."""

    process: subprocess.Popen[bytes]
    stderr: Any
    counted_cpu: float = 0.0
    reaped: bool = False

    def exchange(self, request: bytes, timeout: float) -> dict[str, Any]:
        """Send one framed request (nothing for the greeting) and wait at most ``timeout`` seconds for the
        answer; OcrFailed if the helper dies or hangs (it is then stopped)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        deadline = time.monotonic() + timeout
        stdin, stdout = self.process.stdin.fileno(), self.process.stdout.fileno()
        sent, reply, unsent = 0, b"", memoryview(request)  # slices of a view, not copies of a 4 MB page
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            if request:
                os.set_blocking(stdin, False)
                selector.register(stdin, selectors.EVENT_WRITE)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not (events := selector.select(left)):
                    self.stop()
                    raise OcrFailed(f"Tesseract took more than {timeout:.0f} s on a page")
                for key, _ in events:
                    if key.fd == stdin:
                        try:
                            sent += os.write(stdin, unsent[sent:sent + _CHUNK])
                        except BrokenPipeError:
                            sent = len(request)  # it died: its stdout says so next
                        if sent == len(request):
                            selector.unregister(stdin)
                        continue
                    chunk = os.read(stdout, _CHUNK)
                    if not chunk:
                        raise OcrFailed(self._death())
                    reply += chunk
                    answer = tesseract_server.unframe(reply)
                    if answer is not None:
                        self._count_cpu(float(answer.get("cpu", 0.0)))
                        return answer

    def _count_cpu(self, total: float) -> None:
        add_cpu(total - self.counted_cpu)
        self.counted_cpu = total

    def _death(self) -> str:
        """Why the helper ended, with the last line it wrote to stderr."""
        self.stderr.seek(0)
        lines = [ln for ln in self.stderr.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        code = self._reap()
        how = f"signal {-code}" if code < 0 else f"exit {code}"
        return f"Tesseract failed ({how}): {(lines[-1:] or ['no message'])[0][:200]}"

    def stop(self) -> None:
        """End the helper (stdin closed; killed if it does not go) and wait for it."""
        if self.process.returncode is None:
            assert self.process.stdin is not None
            with contextlib.suppress(OSError):
                self.process.stdin.close()
            try:
                self.process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._reap()

    def _reap(self) -> int:
        """Wait for the helper (once) and close its pipes; what of its CPU the stages already have is not
        counted again."""
        if not self.reaped:
            self.reaped = True
            if self.process.returncode is None:
                _, status, usage = os.wait4(self.process.pid, 0)
                self.process.returncode = os.waitstatus_to_exitcode(status)
                counted_already(min(self.counted_cpu, usage.ru_utime + usage.ru_stime))
            else:
                counted_already(self.counted_cpu)  # waited by Popen: its CPU is among the reaped children's
            for stream in (self.process.stdin, self.process.stdout, self.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        return self.process.returncode


_CHUNK = 1 << 20


class _Pool:
    """This process's idle helpers; a helper serves one page at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[_Helper] = []
        self.owner = os.getpid()
        mp_util.Finalize(self, self.close, exitpriority=10)  # runs at exit, in multiprocessing workers too

    def take(self) -> _Helper:
        """An idle helper that is still alive (one killed meanwhile, e.g. by the OOM killer, is waited for and
        replaced: the page it would have failed is not at fault), or a new one."""
        while True:
            with self.lock:
                helper = self.idle.pop() if self.idle else None
            if helper is None:
                return self._start()
            if helper.process.poll() is None:
                return helper
            helper.stop()

    def give_back(self, helper: _Helper) -> None:
        if helper.process.returncode is None:
            with self.lock:
                self.idle.append(helper)

    def close(self) -> None:
        if self.owner != os.getpid():
            return  # a forked child's copy: the helpers are its parent's
        with self.lock:
            helpers, self.idle = self.idle, []
        for helper in helpers:
            helper.stop()

    def _start(self) -> _Helper:
        stderr = tempfile.TemporaryFile(prefix="digitize-tesseract-")  # noqa: SIM115 - the helper keeps it
        env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
        try:
            process = subprocess.Popen([sys.executable, str(SERVER), str(tessdata())], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=stderr, env=env)
        except OSError as exc:
            stderr.close()
            raise ConfigurationError(f"the Tesseract helper cannot be started ({exc})", hint=_INSTALL_HINT) from exc
        helper = _Helper(process, stderr)
        try:
            hello = helper.exchange(b"", START_TIMEOUT_SECONDS)
        except OcrFailed as exc:
            raise ConfigurationError(f"the Tesseract helper did not start ({exc})", hint=_INSTALL_HINT) from None
        if "error" in hello:
            helper.stop()
            raise ConfigurationError(f"the Tesseract engine cannot be loaded ({hello['error']})", hint=_INSTALL_HINT)
        return helper


_pool: _Pool | None = None
_pool_lock = threading.Lock()


def _this_process_pool() -> _Pool:
    global _pool
    with _pool_lock:
        if _pool is None or _pool.owner != os.getpid():
            _pool = _Pool()  # a forked child leaves its parent's helpers alone
        return _pool


def _ask(header: dict[str, Any], image: np.ndarray, timeout: float) -> dict[str, Any]:
    """One request to an idle helper of this process; OcrFailed on the helper's failure."""
    pixels = np.ascontiguousarray(image, dtype=np.uint8)
    if pixels.ndim != 2:
        raise OcrFailed(f"expected a grey page image, got shape {pixels.shape}")
    height, width = pixels.shape
    pool = _this_process_pool()
    helper = pool.take()
    try:
        answer = helper.exchange(tesseract_server.frame({**header, "width": width, "height": height},
                                                        pixels.tobytes()), timeout)
    finally:
        pool.give_back(helper)
    if "error" in answer:
        message = str(answer["error"])
        if "Failed to init API" in message or "Failed loading language" in message:
            raise ConfigurationError(f"Tesseract cannot load its language data from {tessdata()} ({message[:200]})",
                                     hint=_INSTALL_HINT)
        raise OcrFailed(f"Tesseract failed: {message[:200]}")
    return answer


def recognize_tsv(image: np.ndarray, *, dpi: float, language: str, psm: int, timeout: float) -> str:
    """Tesseract's TSV for one grey image, as its CLI would write it."""
    return str(_ask({"op": "ocr", "dpi": dpi, "language": language, "psm": psm}, image, timeout)["tsv"])


def orientation(image: np.ndarray, *, dpi: float, timeout: float) -> tuple[int, float]:
    """Tesseract OSD: (how far the content is turned clockwise, confidence); (0, 0.0) when it gives up."""
    answer = _ask({"op": "osd", "dpi": dpi}, image, timeout)
    return int(answer["rotation"]) % 360, float(answer["confidence"])


def stop_helpers() -> None:
    """End this process's idle helpers now (they end at exit anyway); the next page starts a fresh one."""
    _this_process_pool().close()
