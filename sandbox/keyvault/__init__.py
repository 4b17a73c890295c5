"""Azure Key Vault: ARM management of vaults / managed HSMs and the keys data plane."""
