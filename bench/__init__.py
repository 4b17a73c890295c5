"""Benchmarks: fleet-scale figures measured side by side against the sandbox (`make bench`)."""
