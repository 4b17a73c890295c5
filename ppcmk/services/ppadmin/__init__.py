"""The Power Platform admin API ("BAP") client: environments, and Managed Environment, CMK link/unlink and
re-enable as long-running operations whose pollers resume from a continuation token; and the Power Platform
API client that lists an environment's lifecycle operations."""

from ppcmk.services.ppadmin.client import PowerPlatformAdminClient
from ppcmk.services.ppadmin.operations import PowerPlatformApiClient

__all__ = ["PowerPlatformAdminClient", "PowerPlatformApiClient"]
