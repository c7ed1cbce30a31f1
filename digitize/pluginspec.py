"""The hooks a plugin may implement and the marker that says it does: the contract with plugin authors.

Modelled on OCRmyPDF's ``pluginspec``. A plugin is a module (or any object) whose functions carry
:data:`hookimpl` and are named after a hook below; :mod:`digitize.plugin_manager` loads the ones
``DIGITIZE_PLUGINS`` names. The library ships one plugin of its own, the Tesseract engine (registered
by :mod:`digitize.ocr.recognize`); tests and benchmarks bring theirs (``tests/plugins/``: a no-op
engine, a fault injector), so no test-only behaviour sits in the production path.
"""

from __future__ import annotations

import pluggy

PROJECT = "digitize"
"""pluggy's project name: markers of another project (OCRmyPDF's, say) are not ours."""

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marks a plugin's implementation of a hook: ``@hookimpl`` above ``def get_ocr_engine(): ...``."""


@hookspec(firstresult=True)
def get_ocr_engine() -> object | None:
    """The OCR engine: an object with :class:`digitize.ocr.engine.OcrEngine`'s interface, or ``None`` to pass.

    The first plugin that answers wins (the last registered is asked first); the built-in Tesseract
    engine answers last, so any plugin that returns an engine replaces it. Asked for every page:
    return a ready object, do not build one per call.
    """


@hookspec
def on_stage(stage: str) -> None:
    """A document reached a stage boundary in this process: one of ``digitize.pipeline.stages.FAULT_POINTS``.

    Every plugin's implementation runs. What one raises is what the stage itself would have raised
    (an ``OSError`` with ENOSPC is the scratch disk full: a transient fault); a test plugin may also end
    the process there, as a worker dying mid-document would.
    """
