"""Reaching a cloud: settings, endpoints, credentials, TLS trust, the HTTP transport, the clock."""
