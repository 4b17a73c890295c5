"""What makes a runbook safe to run twice: the plan, input checks, claims (and the operations kept in them),
holds, retries and step errors."""
