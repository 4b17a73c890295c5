"""Locks: why a policy's identity lost its key, and a locked environment's deletion countdown."""
