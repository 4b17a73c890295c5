"""PowerPlatformApiClient: the one read ppcmk makes on the Power Platform API (api.powerplatform.com).

The admin API ("BAP") shows a running link or unlink only through the environment's runtime reason; any
other lifecycle operation (a Managed Environment change, a copy, a restore) is invisible there, yet it makes
the service refuse a link with 409. "Operation - Get Operations For Environment" lists them all:
`GET /environmentmanagement/environments/{id}/operations?api-version=2022-03-01-preview`, paged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from ppcmk.cloud.transport import error_from
from ppcmk.models.environments import EnvironmentOperation, pick
from ppcmk.services.ppadmin.responses import check_bap_url, transport_failure

OPERATIONS_API = "2022-03-01-preview"
API_NAME = "Power Platform API"


class PowerPlatformApiClient:
    """Environment lifecycle operations, following continuation pages.

    The page's continuation field is not named in our sources: a `continuationToken` (sent back as the query
    parameter of that name, which the API documents) and an absolute `@odata.nextLink` are both followed.
    """

    def __init__(self, http: httpx.Client, page_size: int | None = None) -> None:
        self._http = http
        self._page_size = page_size

    def _get_page(self, url: str, params: dict[str, str] | None) -> Any:
        try:
            response = self._http.get(url, params=params)
        except httpx.TransportError as exc:
            raise transport_failure(exc, "list environment operations", API_NAME) from exc
        if response.status_code != 200:
            raise error_from(response)
        return response.json()

    def iter_environment_operations(self, environment_id: str) -> Iterator[EnvironmentOperation]:
        path = f"/environmentmanagement/environments/{environment_id}/operations"
        first: dict[str, str] = {"api-version": OPERATIONS_API}
        if self._page_size:
            first["limit"] = str(self._page_size)
        url: str = path
        params: dict[str, str] | None = first
        while True:
            page = self._get_page(url, params)
            for raw in pick(page, "value", default=[]):
                yield EnvironmentOperation.from_api(raw)
            token, next_link = pick(page, "continuationToken"), pick(page, "@odata.nextLink")
            if token:
                url, params = path, {**first, "continuationToken": str(token)}
            elif next_link:
                # absolute, with its own query; the bearer token must only go to the API's own host
                url = check_bap_url(str(next_link), str(self._http.base_url), API_NAME)
                params = None
            else:
                return

    def environment_operations(self, environment_id: str) -> list[EnvironmentOperation]:
        """Every lifecycle operation the service lists for the environment (all pages)."""
        return list(self.iter_environment_operations(environment_id))

    def active_operations(self, environment_id: str) -> list[EnvironmentOperation]:
        """The operations that still hold the environment (Queued, InProgress, Validated)."""
        return [op for op in self.iter_environment_operations(environment_id) if op.active]
