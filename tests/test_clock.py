"""The one clock: Vietnam's business date whatever the host's zone, and the dates users type."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from digitize import clock
from digitize.errors import UsageError


def test_business_date_is_vietnams_not_utcs() -> None:
    late = datetime(2025, 12, 31, 23, 30, tzinfo=UTC)  # 06:30 on 1 January in Hà Nội
    assert clock.business_date(late) == date(2026, 1, 1)
    assert clock.business_date(datetime(2025, 12, 31, 16, 59, tzinfo=UTC)) == date(2025, 12, 31)


def test_business_today_follows_utc_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock, "utc_now", lambda: datetime(2025, 6, 30, 17, 0, tzinfo=UTC))
    assert clock.business_today() == date(2025, 7, 1)


@pytest.mark.parametrize("text", ["2025-01-31", "31/01/2025", " 31/1/2025 "])
def test_both_date_forms(text: str) -> None:
    assert clock.parse_business_date(text) == date(2025, 1, 31)


@pytest.mark.parametrize("text", ["01-31-2025", "2025/01/31", "31.01.2025", "yesterday", "", "31/02/2025",
                                  "2025-13-01"])
def test_other_dates_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        clock.parse_business_date(text)
    assert caught.value.exit_code == 64
    assert "dd/mm/yyyy" in caught.value.hint


def test_cutoff_of_a_day_is_its_last_instant_in_vietnam() -> None:
    cutoff = clock.parse_cutoff("31/12/2024")
    assert cutoff.tzinfo is UTC
    assert cutoff == datetime(2024, 12, 31, 16, 59, 59, 999999, tzinfo=UTC)
    assert clock.parse_cutoff("2024-12-31") == cutoff


def test_cutoff_timestamp_with_zone() -> None:
    assert clock.parse_cutoff("2025-03-01T08:00:00+07:00") == datetime(2025, 3, 1, 1, 0, tzinfo=UTC)
    assert clock.parse_cutoff("2025-03-01T01:00:00Z") == datetime(2025, 3, 1, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2025-03-01T08:00:00", "soon", "2025-03-01 8h"])
def test_bad_cutoffs_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        clock.parse_cutoff(text)
