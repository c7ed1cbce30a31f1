"""The rule every route runs under: the client's scope, a purpose for personal data, and one access-log row.

Refusals and failures are logged too, with the status the caller got.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request, Response

from digitize.api.auth import ApiClient, ClientDep
from digitize.api.errors import ApiError, from_digitize
from digitize.api.services import Services, ServicesDep
from digitize.errors import DigitizeError

_T = TypeVar("_T")


@dataclass(frozen=True)
class Access:
    """One authenticated request, ready to run its work under the access rule."""

    request: Request
    client: ApiClient
    services: Services

    def require(self, scope: str) -> None:
        """403 unless the client holds ``scope``."""
        if scope not in self.client.scopes:
            raise ApiError(403, "FORBIDDEN", f"client {self.client.name!r} lacks the {scope!r} scope",
                           "Ask the archive's IT staff for a token with this scope.")

    def run(self, action: str, subject: str | None, purpose: str | None, work: Callable[[], _T], *,
            scope: str = "read", purpose_required: bool = True, response: Response | None = None,
            returned: Callable[[_T], str] | None = None) -> _T:
        """Check the scope and the purpose, run ``work``, and log the access (also when refused or failed);
        ``returned`` says what the answer disclosed, for the log's detail."""
        status = 200
        detail: str | None = None
        try:
            self.require(scope)
            if purpose_required and purpose is None:
                raise ApiError(422, "PURPOSE_REQUIRED", "this endpoint returns personal data: say why you need it",
                               "Send the X-Purpose header (percent-encoded UTF-8) or the purpose query parameter.")
            result = work()
            status = (response.status_code if response is not None else None) or 200
            detail = returned(result) if returned is not None else None
            return result
        except ApiError as exc:
            status = exc.status
            raise
        except DigitizeError as exc:
            status = from_digitize(exc).status
            raise
        except Exception:
            status = 500
            raise
        finally:
            self.services.catalog.log_access(client=self.client.name, method=self.request.method,
                                             path=self.request.url.path, action=action, subject=subject,
                                             purpose=purpose or "", status=status, detail=detail)


def access(request: Request, client: ClientDep, services: ServicesDep) -> Access:
    """The request's :class:`Access` (401 before anything else when the token is missing or unknown)."""
    return Access(request, client, services)


AccessDep = Annotated[Access, Depends(access)]
