"""Key Vault routes (filled in by the data-plane and ARM handlers)."""

from sandbox.http import Route

ROUTES: list[Route] = []
