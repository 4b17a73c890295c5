"""Entra ID for the sandbox: the tenant's principals and applications, and the authority that signs them in
and issues their tokens."""

from ppcmk_sandbox.identity.authority import Authority
from ppcmk_sandbox.identity.principals import Application, Identities, Principal

__all__ = ["Application", "Authority", "Identities", "Principal"]
