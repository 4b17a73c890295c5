"""The offline sandbox cloud: ARM, Key Vault, Power Platform admin API and Graph on one HTTPS server."""

from sandbox.server import Sandbox, SandboxEndpoints

__all__ = ["Sandbox", "SandboxEndpoints"]
