"""Which OCR engine reads the pages: the interface an engine provides, and the plugins' choice of one.

An engine comes from the ``get_ocr_engine`` hook (:mod:`digitize.pluginspec`): Tesseract, the built-in
plugin :mod:`digitize.ocr.recognize` registers, unless a plugin ``DIGITIZE_PLUGINS`` loads supplies
another (a site's own engine; the tests' no-op engine).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from digitize.errors import ConfigurationError
from digitize.plugin_manager import plugin_manager

if TYPE_CHECKING:
    import numpy as np

    from digitize.ocr.recognize import OcrText


@runtime_checkable
class OcrEngine(Protocol):
    """What an OCR engine provides; a plugin's ``get_ocr_engine`` hook returns one (:mod:`digitize.pluginspec`)."""

    name: str
    """Tool name recorded with every OCR result (its key in ``OcrResult.tool_versions``), e.g. ``tesseract``."""

    def version(self) -> str:
        """The engine's version, recorded with every OCR result."""

    def recognize(self, image: np.ndarray, *, dpi: float, language: str, psm: int, timeout: float,
                  work_dir: Path | None) -> OcrText:
        """Words with boxes and confidences in one image (gray or BGR); OcrFailed when the engine fails."""

    def orientation(self, image: np.ndarray, *, dpi: float) -> tuple[int, float]:
        """(How far the content is turned clockwise: 0/90/180/270, confidence on OSD's scale); (0, 0.0) if unsure."""


_CHECKED_ENGINES: set[type] = set()
"""Engine classes found to fit :class:`OcrEngine` (the check costs ~50 µs, and runs for every page otherwise)."""


def ocr_engine() -> OcrEngine:
    """The engine the plugins chose (``DIGITIZE_PLUGINS``); Tesseract unless one of them supplies another."""
    engine = plugin_manager().hook.get_ocr_engine()
    if type(engine) not in _CHECKED_ENGINES:
        if not isinstance(engine, OcrEngine):
            raise ConfigurationError(f"a plugin's OCR engine {engine!r} lacks name, version, recognize or orientation",
                                     hint="Give the engine digitize.ocr.engine.OcrEngine's interface.")
        _CHECKED_ENGINES.add(type(engine))
    return engine
