"""The Power Platform admin API ("BAP") client: environments, Managed Environment, CMK link/unlink,
re-enable, and resumable waits on lifecycle operations."""

from ppcmk.ppadmin.client import PowerPlatformAdminClient

__all__ = ["PowerPlatformAdminClient"]
