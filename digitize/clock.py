"""One clock: the business date is Vietnam's, timestamps are timezone-aware UTC.

A report "as of today", a document code's year and a validity check must not depend on the host's time
zone: at 23:30 UTC it is already the next day in Hà Nội. Everything that needs "now" or "today" asks here,
and every date or cut-off typed by a user (``--as-of``, ``--cutoff``, a DAG parameter) is parsed here, so
the accepted forms and the error are the same everywhere.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from digitize.errors import UsageError

BUSINESS_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
"""The business time zone: days, years and validity are Vietnam's (UTC+7, no daylight saving)."""

_ISO_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_VN_DAY = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_FORMS = "YYYY-MM-DD (2025-01-31) or dd/mm/yyyy (31/01/2025)"


def utc_now() -> datetime:
    """The current instant, timezone-aware UTC (what the catalog records)."""
    return datetime.now(UTC)


def business_date(ts: datetime) -> date:
    """The Vietnamese calendar day of an aware instant (a naive one is taken as UTC, as the catalog stores)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(BUSINESS_TZ).date()


def business_today() -> date:
    """Today in Vietnam, whatever the host's time zone."""
    return business_date(utc_now())


def end_of_business_day(day: date) -> datetime:
    """The last instant (microsecond) of ``day`` in Vietnam, as aware UTC: a cut-off includes what it names."""
    return datetime.combine(day + timedelta(days=1), time(), BUSINESS_TZ).astimezone(UTC) - timedelta(microseconds=1)


def parse_business_date(text: str) -> date:
    """A day typed by a user: ``YYYY-MM-DD`` or ``dd/mm/yyyy``; anything else is a usage error saying so."""
    value = text.strip()
    iso, vn = _ISO_DAY.fullmatch(value), _VN_DAY.fullmatch(value)
    try:
        if iso:
            return date(int(iso[1]), int(iso[2]), int(iso[3]))
        if vn:
            return date(int(vn[3]), int(vn[2]), int(vn[1]))
    except ValueError as exc:
        raise UsageError(f"{text!r} is not a day of the calendar ({exc})", hint=f"Write the day as {_FORMS}.") from exc
    raise UsageError(f"{text!r} is not a date", hint=f"Write the day as {_FORMS}.")


def parse_cutoff(text: str) -> datetime:
    """A data cut-off: a day (its end, Vietnam time) or an ISO timestamp with a zone; returned as aware UTC."""
    value = text.strip()
    if _ISO_DAY.fullmatch(value) or _VN_DAY.fullmatch(value):
        return end_of_business_day(parse_business_date(value))
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError as exc:
        raise UsageError(
            f"{text!r} is neither a date nor a timestamp",
            hint=f"Write the cut-off as {_FORMS} (the end of that day, Vietnam time) or as an ISO timestamp "
            "with its zone (2025-01-31T17:00:00+00:00).",
        ) from exc
    if ts.tzinfo is None:
        raise UsageError(
            f"the cut-off {text!r} has no time zone",
            hint="Add the zone, e.g. 2025-01-31T23:59:59+07:00 or 2025-01-31T16:59:59Z.",
        )
    return ts.astimezone(UTC)
