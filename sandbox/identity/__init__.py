"""Entra ID for the sandbox: the tenant's principals and applications, and the authority that signs them in
and issues their tokens."""

from sandbox.identity.authority import Authority
from sandbox.identity.principals import Application, Identities, Principal

__all__ = ["Application", "Authority", "Identities", "Principal"]
