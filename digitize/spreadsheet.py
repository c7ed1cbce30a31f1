"""Cells that stay text in every spreadsheet the project writes (formula injection, OWASP "CSV Injection").

Titles and agency names come from officers' manifests and registers. Excel, LibreOffice and Google Sheets
run a CSV cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a formula, and
openpyxl writes a str starting with ``=`` as a live formula. Every CSV writer passes its frame through
:func:`csv_frame`, every XLSX writer its values through :func:`xlsx_value` and its cells through
:func:`xlsx_text`, so a future report cannot forget it; :func:`csv_original` is the way back for readers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CSV_PREFIX", "FORMULA_START", "csv_cell", "csv_frame", "csv_original", "xlsx_text", "xlsx_value"]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a CSV cell as a formula (OWASP's list)."""

CSV_PREFIX = "'"
"""Put before such a cell's text (OWASP's rule); also before text that starts with it, so it can be taken off."""


def csv_cell(value: Any) -> Any:
    """A CSV cell that opens as text: a leading apostrophe on text starting with a formula character.

    Text that already starts with an apostrophe gets one more, so :func:`csv_original` always gives the
    original back. Anything that is not text (numbers, negative ones included, dates, missing) is unchanged.
    """
    if isinstance(value, str) and value.startswith((*FORMULA_START, CSV_PREFIX)):
        return CSV_PREFIX + value
    return value


def csv_original(value: Any) -> Any:
    """The original text of a cell :func:`csv_cell` wrote (the inverse: one leading apostrophe removed)."""
    if isinstance(value, str) and value.startswith(CSV_PREFIX):
        return value[len(CSV_PREFIX):]
    return value


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` ready for ``to_csv``: every text cell through :func:`csv_cell`, numeric columns as is."""
    import pandas as pd

    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            out[column] = values.map(csv_cell)
        elif values.dtype.kind == "O":  # object and string columns: the ones that can hold text
            try:  # vectorised: a report's CSV has a million cells, few of them start with a formula character
                risky = values.str.startswith((*FORMULA_START, CSV_PREFIX), na=False).to_numpy(dtype=bool)
            except AttributeError:  # no text in the column (numbers, dates, bools): nothing to protect
                continue
            if risky.any():
                out.loc[risky, column] = CSV_PREFIX + values[risky]
    return out


def xlsx_text(cell: Any) -> Any:
    """An openpyxl cell kept as a string cell if it holds text (openpyxl makes "=…" a formula, "#N/A" an error)."""
    if isinstance(cell.value, str):
        cell.data_type = "s"
    return cell


def xlsx_value(value: Any, new_cell: Callable[[str], Any]) -> Any:
    """``value`` ready for an openpyxl row: text openpyxl would not store as text becomes a string cell.

    ``new_cell`` makes a cell from the text (a write-only sheet's ``WriteOnlyCell``); other values, and text
    openpyxl stores as is, go in unchanged, so a million-row sheet does not pay for a cell per value.
    """
    if isinstance(value, str) and value.startswith(("=", "#")):
        return xlsx_text(new_cell(value))
    return value
