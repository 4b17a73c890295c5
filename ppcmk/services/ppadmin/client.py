"""PowerPlatformAdminClient: the calls ppcmk makes to the Power Platform admin API, on httpx.

Routes and api-versions follow the API reference: environments are read through the admin route; link and
unlink use the route WITHOUT scopes/admin (the scoped one answers 404) with `{"SystemId": ...}`; re-enable is
modelled on the admin center action (docs/INTERFACES.md, section 2).

Recorded service behaviour it copes with (docs/SANDBOX.md names the sources): a poll may answer 409 while
the operation runs (keep polling); a start may answer 409 with an empty body or the code
OperationNotStartable, also when the environment is already in the asked state (re-read, then back off); a
poll of a finished operation may answer 404 (judged by re-reading the environment, never taken as success).
Every start first asks whether that operation already runs for the environment, and waits on it instead of
starting a second one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx

from ppcmk.cloud.clock import Sleeper
from ppcmk.cloud.transport import error_from
from ppcmk.errors import PpcmkError, ServiceError
from ppcmk.models.environments import (
    Environment,
    LifecycleOperation,
    OperationHandle,
    OperationKind,
    WaitResult,
    pick,
)
from ppcmk.services.ppadmin.operations import PowerPlatformApiClient
from ppcmk.services.ppadmin.responses import (
    check_bap_url,
    is_busy_conflict,
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

# Each poll (or start retry) waits this much longer than the previous one, up to the ceiling.
BACKOFF_GROWTH = 1.5

ProgressCallback = Callable[[LifecycleOperation], None]


def reached(kind: OperationKind, env: Environment, target: str | None = None) -> bool:
    """Whether the environment already shows what an operation of `kind` is for (`target`: a link's
    systemId), which is how a 409 on a start or a 404 on a poll is judged."""
    if kind == "governance":
        return env.managed
    if kind == "link":
        return env.cmk is not None and env.cmk.linked and (target is None or env.encrypted_by(target))
    if kind == "unlink":
        return env.cmk is None
    return env.enabled


class PowerPlatformAdminClient:
    """Environments, Managed Environment, CMK link/unlink, re-enable, and lifecycle operation waits.

    `poll_floor`/`poll_ceiling` bound the wait between polls whatever Retry-After says; `start_timeout` bounds
    how long a start keeps backing off while another lifecycle operation holds the environment (409).
    """

    def __init__(self, http: httpx.Client, sleeper: Sleeper, *, poll_floor: float = 15.0,
                 poll_ceiling: float = 300.0, start_timeout: timedelta = timedelta(hours=2),
                 operations: Callable[[], PowerPlatformApiClient] | None = None) -> None:
        self._http = http
        self._sleeper = sleeper
        self.poll_floor = poll_floor
        self.poll_ceiling = poll_ceiling
        self.start_timeout = start_timeout
        self._operations = operations  # lists an environment's running operations (the Power Platform API)

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

    # -- operations ----------------------------------------------------------------------------------------

    def enable_managed_environment(self, environment_id: str) -> OperationHandle | None:
        """Turn on Managed Environment (protectionLevel Standard). None when the service finished at once."""
        return self._start("governance", environment_id,
                           f"{ENVIRONMENTS}/{environment_id}/governanceConfiguration", GOVERNANCE_API,
                           {"protectionLevel": "Standard",
                            "settings": {"extendedSettings": dict(MANAGED_ENVIRONMENT_SETTINGS)}})

    def link_policy(self, environment_id: str, system_id: str) -> OperationHandle | None:
        """Link (or swap to) the Encryption enterprise policy with this systemId."""
        return self._start("link", environment_id,
                           f"{ENVIRONMENTS}/{environment_id}/enterprisePolicies/Encryption/link", LINK_API,
                           {"SystemId": system_id}, target=system_id)

    def unlink_policy(self, environment_id: str, system_id: str) -> OperationHandle | None:
        """Unlink the Encryption policy (revert to the Microsoft-managed key)."""
        return self._start("unlink", environment_id,
                           f"{ENVIRONMENTS}/{environment_id}/enterprisePolicies/Encryption/unlink", LINK_API,
                           {"SystemId": system_id})

    def reenable_environment(self, environment_id: str) -> OperationHandle | None:
        """Re-enable an environment that was locked (after access to its key has been restored)."""
        return self._start("reenable", environment_id, f"{ADMIN_ENVIRONMENTS}/{environment_id}/enable",
                           ENABLE_API, None)

    def running_operation(self, kind: OperationKind, environment_id: str) -> OperationHandle | None:
        """A handle on an operation of `kind` already running for the environment, from the Power Platform
        API's list; None when there is none, or when the list cannot be read (the start's 409 still
        protects the environment then). The list's operationId is the admin API's lifecycle operation id
        (inferred)."""
        names = {name.lower() for name in RUNNING_NAMES.get(kind, ())}
        if self._operations is None or not names:
            return None
        try:
            running = self._operations().active_operations(environment_id)
        except PpcmkError:
            return None
        found = next((op for op in running if (op.name or "").lower() in names and op.operation_id), None)
        if found is None:
            return None
        url = (f"{str(self._http.base_url).rstrip('/')}{BAP}/lifecycleOperations/{found.operation_id}"
               f"?api-version={OPERATION_API}")
        return OperationHandle(url=url, environment_id=environment_id, kind=kind,
                               started_at=found.start_time or self._sleeper.now())

    def _start(self, kind: OperationKind, environment_id: str, path: str, api_version: str,
               body: dict[str, Any] | None, target: str | None = None) -> OperationHandle | None:
        """POST an operation, unless one of its kind already runs (then its handle). A busy 409 (another
        operation holds the environment, or it is already in the asked state) re-reads the environment:
        already there is done (None); otherwise back off, look again and re-POST until `start_timeout`."""
        give_up_at: datetime | None = None
        backoff = self.poll_floor
        while True:
            running = self.running_operation(kind, environment_id)
            if running is not None:
                return running.model_copy(update={"target": target})
            try:
                response = self._http.post(path, params={"api-version": api_version}, json=body)
            except httpx.TransportError as exc:
                raise transport_failure(exc, f"{kind} environment {environment_id}") from exc
            if response.status_code in (200, 201, 202, 204):
                return self._handle(kind, environment_id, response, target)
            error = error_from(response)
            if not is_busy_conflict(error):
                raise error
            if reached(kind, self.get_environment(environment_id), target):
                return None
            now = self._sleeper.now()
            give_up_at = give_up_at or now + self.start_timeout
            if now >= give_up_at:
                raise ServiceError(409, error.code or "Conflict",
                                   f"{kind} of {environment_id} was refused for {self.start_timeout}: an "
                                   f"active lifecycle operation holds the environment ({error.message})",
                                   request_id=error.request_id, correlation_id=error.correlation_id,
                                   path=error.path)
            wait = self._next_delay(retry_after(response), backoff)
            self._sleeper.sleep(min(wait, (give_up_at - now).total_seconds()))
            backoff *= BACKOFF_GROWTH

    def _handle(self, kind: OperationKind, environment_id: str, response: httpx.Response,
                target: str | None = None) -> OperationHandle | None:
        url = operation_url(response)
        if url is None:
            if response.status_code == 202:
                # Accepted without a place to poll: never report that as done (a TF provider bug did).
                raise ServiceError(202, "MissingOperationLocation",
                                   f"{kind} of {environment_id} was accepted without an operation-location "
                                   "header; read the environment to learn its state")
            return None
        return OperationHandle(url=check_bap_url(url, str(self._http.base_url)),
                               retry_after=retry_after(response), environment_id=environment_id, kind=kind,
                               started_at=self._sleeper.now(), target=target)

    def _poll(self, url: str) -> tuple[LifecycleOperation | None, float | None]:
        """The operation, or None while the service answers 409 for it (recorded mid-operation: the
        Terraform provider keeps polling, internal/api/lifecycle.go)."""
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

    def _poll_or_judge(self, handle: OperationHandle) -> tuple[LifecycleOperation | None, float | None]:
        """A poll; a 404 (the service forgot a finished operation) is judged by reading the environment:
        Succeeded only when it shows what the operation was for, else the 404 stands."""
        try:
            return self._poll(handle.url)
        except ServiceError as gone:
            if gone.status != 404:
                raise
            try:
                env = self.get_environment(handle.environment_id)
            except ServiceError:
                raise gone from None
            if not reached(handle.kind, env, handle.target):
                raise
            return LifecycleOperation(id=None, state="Succeeded"), None

    def get_operation(self, url: str) -> LifecycleOperation | None:
        """The operation's state now; None while the service answers 409 for it."""
        return self._poll(url)[0]

    def _next_delay(self, retry_after_seconds: float | None, backoff: float) -> float:
        """Never sooner than the service asked (Retry-After), growing with our own back-off so a four-day
        operation is not polled every minute, always within [poll_floor, poll_ceiling]."""
        wanted = max(retry_after_seconds or 0.0, backoff)
        return min(max(wanted, self.poll_floor), self.poll_ceiling)

    def wait_operation(self, handle: OperationHandle, deadline: timedelta | datetime,
                       on_progress: ProgressCallback | None = None) -> WaitResult:
        """Poll until the operation ends or the deadline passes.

        `deadline` is a duration from now (encryption can take four days: `timedelta(days=4)`) or an absolute
        time, so a resumed wait can keep the original deadline. Failed is returned, not raised; at the
        deadline the result is StillRunning and `handle` can be waited on again, even after a restart.
        """
        start = self._sleeper.now()
        until = deadline if isinstance(deadline, datetime) else start + deadline
        polls, waited = 0, 0.0
        backoff = self.poll_floor
        hinted = handle.retry_after
        # The start's Retry-After says when a first poll is worth making (a poll sooner only costs a call);
        # a wait resumed long after the start polls at once.
        if hinted is not None and handle.started_at is not None:
            due = handle.started_at + timedelta(seconds=self._next_delay(hinted, backoff))
            early = min((due - start).total_seconds(), (until - start).total_seconds())
            if early > 0:
                self._sleeper.sleep(early)
                waited += early
        operation: LifecycleOperation | None = None
        while True:
            polled, hinted_next = self._poll_or_judge(handle)
            polls += 1
            operation = polled or operation
            if polled is not None and on_progress is not None:
                on_progress(polled)
            if polled is not None and polled.terminal:
                return WaitResult(status="Succeeded" if polled.succeeded else "Failed", handle=handle,
                                  operation=polled, polls=polls, waited_seconds=waited)
            hinted = hinted_next if hinted_next is not None else hinted
            remaining = (until - self._sleeper.now()).total_seconds()
            if remaining <= 0:
                return WaitResult(status="StillRunning", handle=handle, operation=operation, polls=polls,
                                  waited_seconds=waited)
            delay = min(self._next_delay(hinted, backoff), remaining)
            backoff *= BACKOFF_GROWTH
            self._sleeper.sleep(delay)
            waited += delay
