"""Bad command lines and bad run parameters, across every `ppcmk` command and every runbook: each ends
with its documented exit code and a short message naming what is wrong, before anything changes."""
