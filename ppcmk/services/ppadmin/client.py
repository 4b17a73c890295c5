"""PowerPlatformAdminClient: the calls ppcmk makes to the Power Platform admin API, on httpx.

Routes and api-versions follow the API reference: environments are read through the admin route; link and
unlink use the route WITHOUT scopes/admin (the scoped one answers 404) with `{"SystemId": ...}`; re-enable is
modelled on the admin center action (docs/INTERFACES.md, undocumented behaviour).

Each `begin_*` returns an `OperationPoller` (pollers.py), which waits on the operation and resumes from its
continuation token. Recorded service behaviour a start copes with (docs/SANDBOX.md names the sources): a start
may answer 409 with an empty body or the code OperationNotStartable, also when the environment is already in
the asked state (re-read, then back off). Every start first asks whether that operation already runs for the
environment, and waits on it instead of starting a second one; `find_started` finds the operation of a start
whose answer was lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx

from ppcmk.cloud.clock import Sleeper
from ppcmk.cloud.transport import error_from
from ppcmk.errors import ConfigError, PpcmkError, ServiceError
from ppcmk.models.environments import (
    Environment,
    EnvironmentOperation,
    LifecycleOperation,
    OperationKind,
    pick,
)
from ppcmk.services.ppadmin.operations import PowerPlatformApiClient
from ppcmk.services.ppadmin.pollers import BACKOFF_GROWTH, ContinuationToken, OperationPoller, reached
from ppcmk.services.ppadmin.responses import (
    check_bap_url,
    is_busy_conflict,
    next_delay,
    operation_url,
    retry_after,
    transport_failure,
)

BAP = "/providers/Microsoft.BusinessAppPlatform"
ADMIN_ENVIRONMENTS = f"{BAP}/scopes/admin/environments"
ENVIRONMENTS = f"{BAP}/environments"
READ_API = "2020-10-01"
LINK_API = "2019-10-01"
GOVERNANCE_API = "2021-04-01"
ENABLE_API = "2021-04-01"
OPERATION_API = "2023-06-01"
ADMIN_ROLE_NEEDED = ("Power Platform Administrator (or Dynamics 365 Administrator) Entra role, or, for a "
                     "service principal, registration as a Power Platform admin management application")
# The names under which the Power Platform API lists a running operation of each kind (inferred: the
# lifecycleOperationsEnforcement ids, and for Managed Environment the name the operations list gives it).
RUNNING_NAMES: dict[OperationKind, tuple[str, ...]] = {
    "link": ("NewCustomerManagedKey", "RotateCustomerManagedKey"),
    "unlink": ("RevertToMicrosoftKey",),
    "reenable": ("EnableEnvironment",),
    "governance": ("UpdateGovernanceConfiguration", "EnableGovernanceConfiguration"),
}

# The Managed Environment settings sent when turning it on: every key of `settings.extendedSettings`, each a
# string, as the Terraform provider's recorded request carries them (docs/SANDBOX.md); the values are the
# neutral ones (no sharing limit, no solution checker, insights on, no maker welcome content). ppcmk only
# turns it on where it is off, so these replace no settings an admin chose.
MANAGED_ENVIRONMENT_SETTINGS: dict[str, str] = {
    "excludeEnvironmentFromAnalysis": "false",
    "isGroupSharingDisabled": "false",
    "maxLimitUserSharing": "-1",
    "disableAiGeneratedDescriptions": "false",
    "includeOnHomepageInsights": "false",
    "limitSharingMode": "noLimit",
    "solutionCheckerMode": "none",
    "suppressValidationEmails": "false",
    "solutionCheckerRuleOverrides": "",
    "makerOnboardingUrl": "",
    "makerOnboardingMarkdown": "",
}

# How far the service's clock may be behind ours when a lost start is looked for in the operations list.
CLOCK_SKEW = timedelta(minutes=5)


class PowerPlatformAdminClient:
    """Environments; Managed Environment, CMK link/unlink and re-enable as long-running operations.

    `poll_floor`/`poll_ceiling` bound the wait between polls whatever Retry-After says; `start_timeout` bounds
    how long a start keeps backing off while another lifecycle operation holds the environment (409). Every
    wait and every "now" goes through `sleeper`.
    """

    def __init__(self, http: httpx.Client, sleeper: Sleeper, *, poll_floor: float = 15.0,
                 poll_ceiling: float = 300.0, start_timeout: timedelta = timedelta(hours=2),
                 operations: Callable[[], PowerPlatformApiClient] | None = None) -> None:
        self._http = http
        self.sleeper = sleeper
        self.poll_floor = poll_floor
        self.poll_ceiling = poll_ceiling
        self.start_timeout = start_timeout
        self._operations = operations  # lists an environment's lifecycle operations (the Power Platform API)

    # -- reads ---------------------------------------------------------------------------------------------

    def _get_json(self, url: str, params: dict[str, str] | None, what: str) -> Any:
        try:
            response = self._http.get(url, params=params)
        except httpx.TransportError as exc:
            raise transport_failure(exc, what) from exc
        if response.status_code != 200:
            raise error_from(response)
        return response.json()

    def iter_environments(self) -> Iterator[Environment]:
        """Every environment the caller administers, following nextLink pages. A caller who is no admin is
        refused naming the role it lacks."""
        url: str | None = ADMIN_ENVIRONMENTS
        params: dict[str, str] | None = {"api-version": READ_API}
        while url:
            try:
                page = self._get_json(url, params, "list environments")
            except ServiceError as refused:
                if refused.status != 403:
                    raise
                raise ServiceError(403, refused.code, f"{refused.message} Listing environments needs the "
                                   f"{ADMIN_ROLE_NEEDED}", request_id=refused.request_id,
                                   correlation_id=refused.correlation_id, path=refused.path) from None
            for raw in pick(page, "value", default=[]):
                yield Environment.from_api(raw)
            url, params = pick(page, "nextLink"), None  # nextLink is absolute and carries its own query
            if url:
                check_bap_url(url, str(self._http.base_url))

    def list_environments(self) -> list[Environment]:
        return list(self.iter_environments())

    def get_environment(self, environment_id: str) -> Environment:
        raw = self._get_json(f"{ADMIN_ENVIRONMENTS}/{environment_id}", {"api-version": READ_API},
                             f"read environment {environment_id}")
        return Environment.from_api(raw)

    def find_environment(self, environment_id: str) -> Environment | None:
        """The environment, or None when the service says it does not exist (or the caller cannot see it)."""
        try:
            return self.get_environment(environment_id)
        except ServiceError as exc:
            if exc.status == 404:
                return None
            raise

    # -- operations ----------------------------------------------------------------------------------------

    def begin_enable_managed(self, environment_id: str, *, continuation_token: str | None = None
                             ) -> OperationPoller:
        """Turn on Managed Environment (protectionLevel Standard)."""
        return self._begin(continuation_token, "governance", environment_id,
                           f"{ENVIRONMENTS}/{environment_id}/governanceConfiguration", GOVERNANCE_API,
                           {"protectionLevel": "Standard",
                            "settings": {"extendedSettings": dict(MANAGED_ENVIRONMENT_SETTINGS)}})

    def begin_link(self, environment_id: str, system_id: str, *, continuation_token: str | None = None
                   ) -> OperationPoller:
        """Link (or swap to) the Encryption enterprise policy with this systemId."""
        return self._begin(continuation_token, "link", environment_id,
                           f"{ENVIRONMENTS}/{environment_id}/enterprisePolicies/Encryption/link", LINK_API,
                           {"SystemId": system_id}, target=system_id)

    def begin_unlink(self, environment_id: str, system_id: str, *, continuation_token: str | None = None
                     ) -> OperationPoller:
        """Unlink the Encryption policy (revert to the Microsoft-managed key)."""
        return self._begin(continuation_token, "unlink", environment_id,
                           f"{ENVIRONMENTS}/{environment_id}/enterprisePolicies/Encryption/unlink", LINK_API,
                           {"SystemId": system_id})

    def begin_reenable(self, environment_id: str, *, continuation_token: str | None = None
                       ) -> OperationPoller:
        """Re-enable an environment that was locked (after access to its key has been restored)."""
        return self._begin(continuation_token, "reenable", environment_id,
                           f"{ADMIN_ENVIRONMENTS}/{environment_id}/enable", ENABLE_API, None)

    def read_operation(self, url: str) -> tuple[LifecycleOperation | None, float | None]:
        """One poll of a lifecycle operation and the Retry-After it carries; the operation is None while the
        service answers 409 for it (recorded mid-operation: the Terraform provider keeps polling,
        internal/api/lifecycle.go)."""
        check_bap_url(url, str(self._http.base_url))
        try:
            response = self._http.get(url)
        except httpx.TransportError as exc:
            raise transport_failure(exc, "read a lifecycle operation") from exc
        if response.status_code == 409:
            return None, retry_after(response)
        if response.status_code not in (200, 202):
            raise error_from(response)
        return LifecycleOperation.from_api(response.json()), retry_after(response)

    def find_started(self, kind: OperationKind, environment_id: str, posted_at: datetime,
                     target: str | None = None) -> OperationPoller | None:
        """The operation of `kind` a start sent at `posted_at` (our clock) made, when its answer was lost with
        the process that sent it: done when the environment shows it; else the one the Power Platform API
        lists as running, or as ended since; None when the start never reached the service. A list that
        cannot be read is an error here, not "none": guessing would send a second start."""
        if reached(kind, self.get_environment(environment_id), target):
            return self._finished(kind, environment_id, target)
        if self._operations is None:
            raise ConfigError("operations", "the Power Platform API client is not configured",
                              "build the admin client with ClientFactory.pp_admin()")
        since = posted_at - CLOCK_SKEW
        found = self._listed(kind, self._operations().environment_operations(environment_id),
                             lambda op: op.active or ((op.end_time or posted_at) >= posted_at
                                                      and (op.start_time or posted_at) >= since))
        return self._poller_on(found, kind, environment_id, target)

    def _listed(self, kind: OperationKind, listed: list[EnvironmentOperation],
                accept: Callable[[EnvironmentOperation], bool]) -> EnvironmentOperation | None:
        """The first (newest) listed operation of `kind` that `accept`s. The list's operationId is the admin
        API's lifecycle operation id (inferred)."""
        names = {name.lower() for name in RUNNING_NAMES.get(kind, ())}
        return next((op for op in listed if (op.name or "").lower() in names and op.operation_id
                     and accept(op)), None)

    def _poller_on(self, listed: EnvironmentOperation | None, kind: OperationKind, environment_id: str,
                   target: str | None) -> OperationPoller | None:
        if listed is None:
            return None
        url = (f"{str(self._http.base_url).rstrip('/')}{BAP}/lifecycleOperations/{listed.operation_id}"
               f"?api-version={OPERATION_API}")
        return self._poller(kind, environment_id, target, url=url, started_at=listed.start_time)

    def _running(self, kind: OperationKind, environment_id: str, target: str | None
                 ) -> OperationPoller | None:
        """A poller on an operation of `kind` already running for the environment; None when there is none,
        or when the list cannot be read (the start's 409 still protects the environment then)."""
        if self._operations is None:
            return None
        try:
            running = self._operations().active_operations(environment_id)
        except PpcmkError:
            return None
        return self._poller_on(self._listed(kind, running, lambda op: True), kind, environment_id, target)

    def _finished(self, kind: OperationKind, environment_id: str, target: str | None) -> OperationPoller:
        """A poller on what the service finished at once: done, Succeeded, never polled."""
        return self._poller(kind, environment_id, target)

    def _poller(self, kind: OperationKind, environment_id: str, target: str | None, url: str | None = None,
                retry_after: float | None = None, started_at: datetime | None = None) -> OperationPoller:
        return OperationPoller(self, ContinuationToken(
            kind=kind, environment_id=environment_id, target=target, url=url, retry_after=retry_after,
            started_at=started_at or self.sleeper.now()))

    def _begin(self, continuation_token: str | None, kind: OperationKind, environment_id: str, path: str,
               api_version: str, body: dict[str, Any] | None, target: str | None = None) -> OperationPoller:
        """The poller a continuation token resumes (no call), else a started operation's."""
        if continuation_token is None:
            return self._start(kind, environment_id, path, api_version, body, target)
        return OperationPoller.from_continuation_token(self, continuation_token, kind, environment_id)

    def _start(self, kind: OperationKind, environment_id: str, path: str, api_version: str,
               body: dict[str, Any] | None, target: str | None = None) -> OperationPoller:
        """POST an operation, unless one of its kind already runs (then its poller). A start refused because
        the environment is already in the asked state (a busy 409; the 400 an unlink gets when nothing is
        linked any more) is done at once. Another busy 409 (another operation holds the environment) backs
        off, looks again and re-POSTs until `start_timeout`."""
        give_up_at: datetime | None = None
        backoff = self.poll_floor
        while True:
            running = self._running(kind, environment_id, target)
            if running is not None:
                return running
            try:
                response = self._http.post(path, params={"api-version": api_version}, json=body)
            except httpx.TransportError as exc:
                raise transport_failure(exc, f"{kind} environment {environment_id}") from exc
            if response.status_code in (200, 201, 202, 204):
                return self._accepted(kind, environment_id, response, target)
            error = error_from(response)
            busy = is_busy_conflict(error)
            if not busy and error.status != 400:
                raise error
            if reached(kind, self.get_environment(environment_id), target):
                return self._finished(kind, environment_id, target)
            if not busy:
                raise error
            now = self.sleeper.now()
            give_up_at = give_up_at or now + self.start_timeout
            if now >= give_up_at:
                raise ServiceError(409, error.code or "Conflict",
                                   f"{kind} of {environment_id} was refused for {self.start_timeout}: an "
                                   f"active lifecycle operation holds the environment ({error.message})",
                                   request_id=error.request_id, correlation_id=error.correlation_id,
                                   path=error.path)
            wait = next_delay(retry_after(response), backoff, self.poll_floor, self.poll_ceiling)
            self.sleeper.sleep(min(wait, (give_up_at - now).total_seconds()))
            backoff *= BACKOFF_GROWTH

    def _accepted(self, kind: OperationKind, environment_id: str, response: httpx.Response,
                  target: str | None = None) -> OperationPoller:
        url = operation_url(response)
        if url is None:
            if response.status_code == 202:
                # Accepted without a place to poll: never report that as done (a TF provider bug did).
                raise ServiceError(202, "MissingOperationLocation",
                                   f"{kind} of {environment_id} was accepted without an operation-location "
                                   "header; read the environment to learn its state")
            return self._finished(kind, environment_id, target)
        return self._poller(kind, environment_id, target, url=check_bap_url(url, str(self._http.base_url)),
                            retry_after=retry_after(response))
