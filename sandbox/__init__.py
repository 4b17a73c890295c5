"""The offline sandbox cloud: ARM, Key Vault, Power Platform admin API and Graph on one HTTPS server."""
