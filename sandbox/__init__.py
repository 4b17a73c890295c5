"""The offline sandbox cloud: ARM, Key Vault, Power Platform admin API and Graph on one HTTPS server."""

from ppcmk_sandbox.serve import serve_forever
from ppcmk_sandbox.server import Sandbox, SandboxEndpoints

__all__ = ["Sandbox", "SandboxEndpoints", "serve_forever"]
