"""The service clients: one factory builds each client of ARM, Key Vault, Graph and the Power Platform API."""
