"""The doctor's checks: pure functions from read-back facts to findings. `azure` judges the vault, key,
rotation, provider, enterprise policy and key access; `hsm` a managed HSM's local roles; `environments` one
environment and its lifecycle operations. Gathering the facts is `tasks.doctor`'s job."""
