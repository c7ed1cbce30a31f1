"""The Tesseract helper process: one engine loaded once, reading page after page (run by :mod:`digitize.ocr.tesseract`).

Started as a script (``python .../tesseract_server.py TESSDATA``), so it imports nothing of ``digitize``
and little else. It speaks a small framed protocol on stdin/stdout; each message is a 4-byte big-endian
header length, a JSON header, then ``header["size"]`` bytes of payload:

- on start it says ``{"tesseract": VERSION, "tesserocr": VERSION}`` (or ``{"error": ...}`` and exits); a
  language is loaded at its first request, so missing language data is that request's error;
- ``{"op": "ocr", "width", "height", "dpi", "language", "psm", "size"}`` + the grey pixels, row by row,
  answers ``{"tsv": ...}``: Tesseract's TSV, as its CLI writes it;
- ``{"op": "osd", "width", "height", "dpi", "size"}`` + pixels answers ``{"rotation", "confidence"}``
  (``0, 0.0`` when OSD gives up);
- any failure answers ``{"error": MESSAGE}`` and the helper goes on with the next request.

Every answer carries ``cpu``: the helper's CPU seconds so far, so the caller can count them to its stages
(they would otherwise only show when the helper exits). It ends when stdin closes. Tesseract's own
messages go to stderr: stdout carries the protocol alone.
"""

from __future__ import annotations

import json
import os
import resource
import struct
import sys
from typing import IO, Any

_LENGTH = struct.Struct(">I")


def frame(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """One message as bytes (``size`` is set from the payload)."""
    data = json.dumps({**header, "size": len(payload)}).encode("utf-8")
    return _LENGTH.pack(len(data)) + data + payload


def unframe(data: bytes) -> dict[str, Any] | None:
    """The header of the payload-less message ``data`` starts with, None while it is incomplete."""
    if len(data) < _LENGTH.size:
        return None
    end = _LENGTH.size + _LENGTH.unpack_from(data)[0]
    if len(data) < end:
        return None
    header: dict[str, Any] = json.loads(data[_LENGTH.size:end])
    return header


def write_message(stream: IO[bytes], header: dict[str, Any], payload: bytes = b"") -> None:
    """Send one framed message."""
    stream.write(frame(header, payload))
    stream.flush()


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(stream: IO[bytes]) -> tuple[dict[str, Any], bytes] | None:
    """One framed message, or None at the end of the stream."""
    prefix = _read_exactly(stream, _LENGTH.size)
    if prefix is None:
        return None
    raw = _read_exactly(stream, _LENGTH.unpack(prefix)[0])
    if raw is None:
        return None
    header = json.loads(raw)
    payload = _read_exactly(stream, int(header.get("size", 0))) if header.get("size") else b""
    return (header, payload) if payload is not None else None


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Engines:
    """The loaded engines, one per language (and OSD's), reused for every page."""

    def __init__(self, tessdata: str) -> None:
        import tesserocr

        self.tesserocr = tesserocr
        self.tessdata = tessdata
        self.loaded: dict[str, Any] = {}

    def _api(self, language: str) -> Any:
        api = self.loaded.get(language)
        if api is None:
            psm = self.tesserocr.PSM.OSD_ONLY if language == "osd" else self.tesserocr.PSM.AUTO
            api = self.loaded[language] = self.tesserocr.PyTessBaseAPI(path=self.tessdata, lang=language, psm=psm)
        return api

    def _load(self, api: Any, header: dict[str, Any], pixels: bytes) -> None:
        width, height = int(header["width"]), int(header["height"])
        if len(pixels) != width * height:
            raise ValueError(f"{len(pixels)} bytes for a {width}x{height} grey image")
        api.SetImageBytes(pixels, width, height, 1, width)
        api.SetSourceResolution(max(1, round(float(header["dpi"]))))

    def ocr(self, header: dict[str, Any], pixels: bytes) -> dict[str, Any]:
        api = self._api(str(header["language"]))
        api.SetPageSegMode(int(header["psm"]))
        self._load(api, header, pixels)
        if not api.Recognize():
            raise RuntimeError("recognition failed")
        return {"tsv": api.GetTSVText(0)}

    def osd(self, header: dict[str, Any], pixels: bytes) -> dict[str, Any]:
        api = self._api("osd")
        self._load(api, header, pixels)
        found = api.DetectOrientationScript()
        if not found:
            return {"rotation": 0, "confidence": 0.0}
        return {"rotation": int(found["orient_deg"]) % 360, "confidence": float(found["orient_conf"])}


def main() -> None:
    protocol = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever the engine prints goes to stderr, never into the protocol
    requests = sys.stdin.buffer
    try:
        engines = _Engines(sys.argv[1])
        version = engines.tesserocr.tesseract_version().split()[1]
    except Exception as exc:  # reported to the caller, which raises the right error
        write_message(protocol, {"error": f"{type(exc).__name__}: {exc}", "cpu": _cpu()})
        return
    write_message(protocol, {"tesseract": version, "tesserocr": engines.tesserocr.__version__, "cpu": _cpu()})
    while (request := read_message(requests)) is not None:
        header, payload = request
        try:
            reply = engines.ocr(header, payload) if header.get("op") == "ocr" else engines.osd(header, payload)
        except Exception as exc:  # one bad page must not end the helper
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        write_message(protocol, {**reply, "cpu": _cpu()})


if __name__ == "__main__":
    main()
