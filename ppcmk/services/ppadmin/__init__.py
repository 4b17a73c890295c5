"""The Power Platform admin API ("BAP") client: environments, Managed Environment, CMK link/unlink,
re-enable, and resumable waits on lifecycle operations; and the Power Platform API client that lists an
environment's lifecycle operations."""

from ppcmk.services.ppadmin.client import PowerPlatformAdminClient
from ppcmk.services.ppadmin.operations import PowerPlatformApiClient

__all__ = ["PowerPlatformAdminClient", "PowerPlatformApiClient"]
