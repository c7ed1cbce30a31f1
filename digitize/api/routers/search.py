"""``GET /search``: full-text search of the archived pages."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from digitize.api.access import AccessDep
from digitize.api.auth import PurposeDep
from digitize.api.errors import ERRORS
from digitize.api.models import AGENCY_PATTERN, HOLDER_PATTERN, SearchHitOut, SearchOut

router = APIRouter()


@router.get("/search", response_model=SearchOut, responses=ERRORS, summary="Full-text search of archived pages",
            tags=["search"])
def search_endpoint(
    access: AccessDep, purpose: PurposeDep,
    q: Annotated[str, Query(min_length=1, max_length=500, description='Words, codes, "phrases"')],
    agency: Annotated[str | None, Query(pattern=AGENCY_PATTERN)] = None,
    kind: Literal["KQ", "TP"] | None = None,
    issued_from: Annotated[date | None, Query(alias="from")] = None,
    issued_to: Annotated[date | None, Query(alias="to")] = None,
    holder: Annotated[str | None, Query(pattern=HOLDER_PATTERN)] = None,
    exact: bool = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> SearchOut:
    from digitize import search

    def work() -> SearchOut:
        result = search.search(access.services.catalog, q, filters=search.SearchFilters(
            agency=agency, kind=kind, issued_from=issued_from, issued_to=issued_to, holder=holder),
            exact=exact, limit=limit, offset=offset)
        return SearchOut(query=result.query, exact=result.exact, corrected_query=result.corrected_query,
                         truncated=result.truncated,
                         hits=[SearchHitOut(**{k: v for k, v in h.items() if k != "document_id"})
                               for h in search.iter_hits(result.hits)])

    if holder is None:
        return access.run("search", q, purpose, work, returned=_returned)
    return access.run("holder_search", holder, purpose, work, returned=lambda out: f"q={q!r}; {_returned(out)}")


def _returned(out: SearchOut) -> str:
    """The documents a search disclosed, each with its holder: what the access log keeps of the answer."""
    found = dict.fromkeys(f"{h.code} ({h.holder_id or 'no holder'})" for h in out.hits)
    return f"returned {len(found)} document(s): {', '.join(found)}" if found else "returned nothing"
