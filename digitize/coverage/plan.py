"""The provincial plan as data: levels, indicators with yearly targets, and loading a plan file.

A plan file (``schemas/plans/*.json``) is validated against ``schemas/plan.schema.json`` and then for
what a schema cannot say (duplicate levels or indicators, targets for undeclared levels), so a broken
file fails at load with the field named, never halfway through a report.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema

from digitize.config import REPO_ROOT
from digitize.errors import ConfigurationError

PLAN_SCHEMA_PATH = REPO_ROOT / "schemas" / "plan.schema.json"
SCOPE_ALL = "all"
"""Target scope (and report row) covering every level at once."""


@dataclass(frozen=True)
class Level:
    """An administrative level as the plan names it."""

    code: str
    """Value of ``agencies.level`` this level matches (e.g. ``province``)."""

    vi: str
    """Vietnamese name shown in reports (e.g. ``Cấp tỉnh``)."""

    en: str
    """English name shown in reports."""


@dataclass(frozen=True)
class Indicator:
    """One indicator of the plan with its yearly targets per level."""

    id: str
    """What is measured: ``stock``, ``flow``, ``units`` or ``not_asked_again``."""

    title_vi: str
    """Vietnamese title, as in the plan."""

    title_en: str
    """English title."""

    source: str
    """Sections of the plan the targets come from."""

    rule: str
    """The rule as the plan states it (yearly numbers may be derived from it)."""

    note: str
    """How the numbers were transcribed or derived."""

    excludes_remote: bool
    """Units flagged remote are left out (the plan's "trừ các xã vùng sâu, vùng xa")."""

    targets: Mapping[str, Mapping[int, float]]
    """Scope (level code or ``all``) → year → target percentage (0–100)."""

    def target(self, scope: str, year: int) -> float | None:
        """Target for ``year``: the latest year defined at or before it (clamped), None before the first."""
        years = self.targets.get(scope)
        if not years:
            return None
        eligible = [y for y in years if y <= year]
        return float(years[max(eligible)]) if eligible else None


@dataclass(frozen=True)
class Plan:
    """A provincial plan's digitization targets, loaded from ``schemas/plans/*.json``."""

    id: str
    """Number and notation of the plan (e.g. ``155/KH-UBND``)."""

    title_vi: str
    """Vietnamese title."""

    title_en: str
    """English title."""

    province: str
    """Province the plan applies to."""

    issuer: str
    """Authority that issued the plan."""

    issued: date
    """Date of issue."""

    source_reference: str
    """Citation of the plan text the targets were transcribed from."""

    levels: tuple[Level, ...]
    """Administrative levels, in report order."""

    indicators: tuple[Indicator, ...]
    """Indicators with their targets."""

    sha256: str = ""
    """SHA-256 of the plan file's bytes: a report names the exact plan it was measured against."""

    def indicator(self, indicator_id: str) -> Indicator | None:
        """The indicator with this id, or None when the plan sets no such target."""
        return next((i for i in self.indicators if i.id == indicator_id), None)

    def level_names(self, code: str) -> tuple[str, str]:
        """(Vietnamese, English) names of a level; the raw code for levels the plan does not name."""
        if code == SCOPE_ALL:
            return ("Toàn tỉnh", "All levels")
        if code == "unknown":  # the accounting's level of a document whose agency has no period valid on the day
            return ("Không xác định cấp", "Level unknown")
        level = next((lv for lv in self.levels if lv.code == code), None)
        return (level.vi, level.en) if level else (code, code)


def load_plan(path: Path) -> Plan:
    """Read and validate a plan file; any problem is a ConfigurationError naming the file and the field."""
    path = Path(path)
    hint = f"Correct {path} so it matches schemas/plan.schema.json (see schemas/plans/tien-giang-155-2021.json)."
    try:
        raw = path.read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"plan file {path} does not exist", hint="Set DIGITIZE_PLAN to a file in schemas/plans/."
        ) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"plan file {path} is not valid UTF-8 JSON: {exc}", hint=hint) from exc
    schema = json.loads(PLAN_SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{_json_path(e.absolute_path)}: {e.message}" for e in errors[:5]]
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ConfigurationError(f"plan file {path} is invalid: " + "; ".join(lines) + more, hint=hint)
    levels = tuple(Level(code=lv["code"], vi=lv["vi"], en=lv["en"]) for lv in data["levels"])
    codes = [lv.code for lv in levels]
    problems = [f"level {c!r} declared twice" for c in sorted(set(codes)) if codes.count(c) > 1]
    problems += [f"level code {SCOPE_ALL!r} is reserved" for c in codes if c == SCOPE_ALL]
    ids = [i["id"] for i in data["indicators"]]
    problems += [f"indicator {i!r} declared twice" for i in sorted(set(ids)) if ids.count(i) > 1]
    for ind in data["indicators"]:
        problems += [
            f"indicators[{ind['id']}].targets: scope {s!r} is not a declared level"
            for s in ind["targets"]
            if s != SCOPE_ALL and s not in codes
        ]
    if problems:
        raise ConfigurationError(f"plan file {path} is inconsistent: " + "; ".join(problems), hint=hint)
    indicators = tuple(
        Indicator(
            id=ind["id"],
            title_vi=ind["title"]["vi"],
            title_en=ind["title"]["en"],
            source=ind["source"],
            rule=ind.get("rule", ""),
            note=ind.get("note", ""),
            excludes_remote=bool(ind.get("excludes_remote")),
            targets=MappingProxyType(
                {
                    scope: MappingProxyType({int(y): float(v) for y, v in years.items()})
                    for scope, years in ind["targets"].items()
                }
            ),
        )
        for ind in data["indicators"]
    )
    return Plan(
        id=data["id"],
        title_vi=data["title"]["vi"],
        title_en=data["title"]["en"],
        province=data["province"],
        issuer=data["issuer"],
        issued=date.fromisoformat(data["issued"]),
        source_reference=data["source"]["reference"],
        levels=levels,
        indicators=indicators,
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def _json_path(parts: Iterable[Any]) -> str:
    """Where a schema error is, as ``$.indicators[0].targets`` so the message points into the file."""
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out
