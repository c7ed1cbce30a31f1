"""Results files written by several benchmarks: each rewrites only its own ``## `` section."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, heading: str, section: str, *, title: str) -> None:
    """Put ``section`` (which starts with ``heading``) into ``path`` in place of the previous one; the other
    sections, written by other benchmarks, are kept. A new file starts with ``title``."""
    text = path.read_text(encoding="utf-8") if path.exists() else f"{title}\n\n"
    if heading in text:
        before, rest = text.split(heading, 1)
        after = rest.split("\n## ", 1)
        text = before + section + ("\n## " + after[1] if len(after) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")
