"""Every Power Platform admin API route the sandbox serves (any api-version is accepted), plus the one Power
Platform API route (environment lifecycle operations)."""

from __future__ import annotations

from ppcmk_sandbox.http import Route
from ppcmk_sandbox.powerplatform import handlers, ppapi

_BAP = r"/providers/Microsoft\.BusinessAppPlatform"
_ENVIRONMENTS = _BAP + r"(?P<admin>/scopes/admin)?/environments"
_ENVIRONMENT = _ENVIRONMENTS + r"/(?P<environment>[^/]+)"
# Link/unlink exist only without scopes/admin: the scoped route is not registered (404), as in the service.
_CMK = _BAP + r"/environments/(?P<environment>[^/]+)/enterprisePolicies/Encryption"

ROUTES = [
    Route("GET", _ENVIRONMENTS, handlers.list_environments, "bap"),
    Route("GET", _ENVIRONMENT, handlers.get_environment, "bap"),
    Route("POST", _ENVIRONMENT + r"/governanceConfiguration", handlers.set_governance, "bap", mutating=True),
    Route("POST", _CMK + r"/link", handlers.link_policy, "bap", mutating=True),
    Route("POST", _CMK + r"/unlink", handlers.unlink_policy, "bap", mutating=True),
    Route(
        "POST",
        _BAP + r"/scopes/admin/environments/(?P<environment>[^/]+)/enable",
        handlers.reenable_environment,
        "bap",
        mutating=True,
    ),
    Route("GET", _BAP + r"/lifecycleOperations/(?P<operation>[^/]+)", handlers.get_operation, "bap"),
    # The Power Platform API (api.powerplatform.com), served from the same origin.
    Route(
        "GET",
        r"/environmentmanagement/environments/(?P<environment>[^/]+)/operations",
        ppapi.list_environment_operations,
        "ppapi",
    ),
]
