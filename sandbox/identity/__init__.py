"""Entra ID for the sandbox: personas and service principals, and the tokens that identify callers."""

from ppcmk_sandbox.identity.principals import Identities, Principal
from ppcmk_sandbox.identity.tokens import decode_token, issue_token

__all__ = ["Identities", "Principal", "decode_token", "issue_token"]
