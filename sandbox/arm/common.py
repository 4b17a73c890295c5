"""What every emulated ARM route shares: the subscription check, error builders, route building."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

from ppcmk_sandbox.http import Route, SandboxHttpError, SandboxRequest, SandboxResponse, arm_error

ArmHandler = Callable[[SandboxRequest, "re.Match[str]"], SandboxResponse]

SUBSCRIPTION = r"/subscriptions/(?P<subscription>[^/]+)"
RESOURCE_GROUP = SUBSCRIPTION + r"/resourceGroups/(?P<resource_group>[^/]+)"


def arm_route(method: str, pattern: str, handler: ArmHandler, *, mutating: bool = False) -> Route:
    """An ARM-plane route whose subscription (if the path names one) must be the sandbox's.

    (The front door already answers 400 MissingApiVersionParameter for ARM routes without api-version.)"""

    def checked(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
        subscription = match.groupdict().get("subscription")
        if subscription is not None:
            require_subscription(req, subscription)
        return handler(req, match)

    return Route(method, pattern, checked, "arm", mutating=mutating)


def require_subscription(req: SandboxRequest, subscription: str) -> None:
    if subscription.lower() != req.world.settings.subscription_id.lower():
        raise SandboxHttpError(
            arm_error(404, "SubscriptionNotFound", f"The subscription '{subscription}' could not be found.")
        )


def not_found(resource_type: str, name: str, resource_group: str | None = None) -> SandboxHttpError:
    where = f" under resource group '{resource_group}'" if resource_group else ""
    return SandboxHttpError(
        arm_error(404, "ResourceNotFound", f"The Resource '{resource_type}/{name}'{where} was not found.")
    )


def iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
