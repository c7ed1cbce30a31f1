"""One clock (issue #16): every place that takes "today" takes Vietnam's day, whatever the host's zone.

Each test sets the instant to late evening UTC, when the day in Hà Nội is already the next one, through
``digitize.clock.utc_now`` (the one source of "now"), and checks what a user would see: a document code's
year, the dashboard's default day, the CLI's default and typed dates.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from robustness_support import NOOP_OCR, make_context, png, register, row, write_batch

from digitize import clock
from digitize.config import REPO_ROOT

NEW_YEARS_EVE_UTC = datetime(2024, 12, 31, 23, 30, tzinfo=UTC)  # 06:30 on 1 January 2025 in Vietnam


@pytest.fixture()
def late_evening(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(clock, "utc_now", lambda: NEW_YEARS_EVE_UTC)
    return NEW_YEARS_EVE_UTC


def test_code_year_is_vietnams(late_evening: datetime, tmp_path: Path, s3_server: str, demo_pki: Any,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    from digitize.pipeline.stages import process_document

    monkeypatch.setenv("DIGITIZE_PLUGINS", NOOP_OCR)
    ctx = make_context(tmp_path, s3_server, demo_pki, "clock-year")
    batch = write_batch(tmp_path / "inbox", "batch-clock", {"a.png": png()}, [row("a.png")])
    (doc_id,) = register(ctx, batch).to_process
    outcome = process_document(ctx, doc_id, batch)
    assert outcome.status == "ARCHIVED", outcome
    assert ".2025." in str(outcome.code)  # UTC still says 2024


def test_dashboard_default_day_is_vietnams(late_evening: datetime) -> None:
    from digitize.presentation import dashboard

    assert dashboard.today() == date(2025, 1, 1)


def test_cli_default_as_of_is_vietnams(late_evening: datetime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from digitize.catalog import Catalog
    from digitize.presentation.cli import main

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    Catalog(url).upgrade()
    monkeypatch.setenv("DIGITIZE_CATALOG_URL", url)
    assert main(["coverage"]) == 0
    assert "2025-01-01" in capsys.readouterr().out


@pytest.mark.parametrize("typed", ["01/01/2025", "2025-01-01"])
def test_cli_as_of_in_both_forms(typed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from digitize.catalog import Catalog
    from digitize.presentation.cli import main

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = Catalog(url)
    catalog.upgrade()
    catalog.import_agencies(REPO_ROOT / "samples" / "agencies.csv")
    monkeypatch.setenv("DIGITIZE_CATALOG_URL", url)
    assert main(["coverage", "--as-of", typed]) == 0
    assert "2025-01-01" in capsys.readouterr().out


@pytest.mark.parametrize("option", ["--as-of", "--cutoff"])
def test_cli_refuses_other_dates_without_a_traceback(option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from digitize.catalog import Catalog
    from digitize.presentation.cli import main

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    Catalog(url).upgrade()
    monkeypatch.setenv("DIGITIZE_CATALOG_URL", url)
    assert main(["coverage", option, "1/13/2025"]) == 64
    said = capsys.readouterr()
    assert "Traceback" not in said.out + said.err
    assert "1/13/2025" in said.err and "dd/mm/yyyy" in said.err


def test_cli_refuses_a_cut_off_in_the_future(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Facts recorded between now and a future cut-off would change the report later: it would not be frozen."""
    from digitize.catalog import Catalog
    from digitize.presentation.cli import main

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    Catalog(url).upgrade()
    monkeypatch.setenv("DIGITIZE_CATALOG_URL", url)
    assert main(["coverage", "--cutoff", "31/12/2999"]) == 64
    assert "in the future" in capsys.readouterr().err
