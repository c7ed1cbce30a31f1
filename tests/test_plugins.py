"""Plugins: ``DIGITIZE_PLUGINS`` loads them in every process; they replace the OCR engine or inject faults.

The library reads no test switch: the no-op engine and the fault injector are plugins in
``tests/plugins/``, and what crosses into other processes is the one setting naming them.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from robustness_support import FAULTS, NOOP_OCR, REPO

from digitize.errors import ConfigurationError
from digitize.ocr.engine import ocr_engine
from digitize.ocr.recognize import OcrText, TesseractEngine, recognize, tool_versions
from digitize.pipeline.stages import FAULT_POINTS, fault_point
from digitize.plugin_manager import plugin_manager, register_plugin, unregister_plugin
from digitize.pluginspec import hookimpl

CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from imagegen import render_page
from digitize.ocr.engine import ocr_engine
from digitize.ocr.recognize import recognize, tool_versions
found = recognize(render_page(("GIẤY XÁC NHẬN",), dpi=300, width_in=3.0, height_in=1.0), dpi=300)
print(json.dumps([type(ocr_engine()).__name__, found.text, sorted(tool_versions())]))
"""


def _engine_in_a_new_process(**env: str) -> list[Any]:
    base = {k: v for k, v in os.environ.items() if k != "DIGITIZE_PLUGINS"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(REPO / "tests")], env={**base, **env}, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_plugin_named_by_path_or_module_replaces_the_engine_in_a_new_process() -> None:
    engine, text, tools = _engine_in_a_new_process()
    assert engine == "TesseractEngine" and "GIẤY" in text, "without the setting Tesseract reads the page"
    by_path = _engine_in_a_new_process(DIGITIZE_PLUGINS=NOOP_OCR)
    plugins_dir = str(Path(NOOP_OCR).parent)
    by_module = _engine_in_a_new_process(DIGITIZE_PLUGINS="noop_ocr",
                                         PYTHONPATH=os.pathsep.join([plugins_dir, os.environ.get("PYTHONPATH", "")]))
    assert by_path == by_module == ["NoopEngine", "", tools]  # recognises nothing, still reports as Tesseract


@pytest.mark.parametrize(("value", "message"), [
    ("no_such_digitize_plugin", "'no_such_digitize_plugin' cannot be imported"),
    ("{tmp}/absent_plugin.py", "no plugin file"),
    ("{tmp}/hookless_plugin.py", "implements no digitize hook"),
    ("{tmp}/misnamed_hook_plugin.py", "does not fit the hooks"),
    ("{tmp}/broken_plugin.py", "failed to load (boom)"),
])
def test_a_plugin_that_cannot_be_loaded_is_a_configuration_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 value: str, message: str) -> None:
    (tmp_path / "hookless_plugin.py").write_text("ANSWER = 42\n")
    (tmp_path / "misnamed_hook_plugin.py").write_text(
        "from digitize.pluginspec import hookimpl\n\n@hookimpl\ndef get_ocr_engin():\n    return None\n")
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.setenv("DIGITIZE_PLUGINS", value.format(tmp=tmp_path))
    try:
        with pytest.raises(ConfigurationError) as info:
            plugin_manager()
    finally:
        for name in ("hookless_plugin", "misnamed_hook_plugin"):  # imported fine, refused when registered
            sys.modules.pop(name, None)
    assert "DIGITIZE_PLUGINS" in info.value.message and message in info.value.message
    assert "DIGITIZE_PLUGINS" in info.value.hint
    monkeypatch.delenv("DIGITIZE_PLUGINS")
    assert isinstance(ocr_engine(), TesseractEngine), "a failed load is not kept"


class _FixedText(TesseractEngine):
    name = "fixed-text"

    def version(self) -> str:
        return "9.9"

    def recognize(self, image: np.ndarray, *, dpi: float, language: str, psm: int, timeout: float,
                  work_dir: Path | None) -> OcrText:
        return OcrText((), "always this")


class _EnginePlugin:
    def __init__(self, engine: object) -> None:
        self.engine = engine

    @hookimpl
    def get_ocr_engine(self) -> object:
        return self.engine


def test_a_plugin_registered_in_process_replaces_the_engine_until_unregistered() -> None:
    plugin = _EnginePlugin(_FixedText())
    register_plugin(plugin)
    try:
        assert recognize(np.zeros((10, 10), np.uint8), dpi=300).text == "always this"
        versions = tool_versions()
        assert versions["fixed-text"] == "9.9" and "tesseract" not in versions
    finally:
        unregister_plugin(plugin)
    assert isinstance(ocr_engine(), TesseractEngine)


def test_an_engine_without_the_interface_is_a_configuration_error() -> None:
    plugin = _EnginePlugin(object())
    register_plugin(plugin)
    try:
        with pytest.raises(ConfigurationError, match="lacks name, version, recognize or orientation"):
            ocr_engine()
    finally:
        unregister_plugin(plugin)


def test_the_fault_injector_strikes_here_and_in_forked_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITIZE_PLUGINS", FAULTS)
    for stage in FAULT_POINTS:
        fault_point(stage)  # inert until DIGITIZE_TEST_FAULT names a fault
    monkeypatch.setenv("DIGITIZE_TEST_FAULT", "after_sign:enospc")
    fault_point("after_code")
    with pytest.raises(OSError) as info:
        fault_point("after_sign")
    assert info.value.errno == errno.ENOSPC

    monkeypatch.setenv("DIGITIZE_TEST_FAULT", "during_upload")
    fork = multiprocessing.get_context("fork")
    for plugins in (FAULTS, f"{NOOP_OCR},{FAULTS}"):  # loaded before the fork, then loaded by the child itself
        monkeypatch.setenv("DIGITIZE_PLUGINS", plugins)
        survivor = fork.Process(target=fault_point, args=("after_sign",))
        survivor.start()
        survivor.join(60)
        killed = fork.Process(target=fault_point, args=("during_upload",))
        killed.start()
        killed.join(60)
        assert (survivor.exitcode, killed.exitcode) == (0, -signal.SIGKILL), plugins


def test_the_library_reads_no_test_switch() -> None:
    source = "".join(p.read_text(encoding="utf-8") for p in (REPO / "digitize").rglob("*.py"))
    for name in ("DIGITIZE_FAULT", "DIGITIZE_OCR_ENGINE", "DIGITIZE_TEST_FAULT", "noop"):
        assert name not in source, f"{name} in digitize/: test behaviour belongs in tests/plugins/"
