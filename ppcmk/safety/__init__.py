"""What makes a runbook safe to run twice: the plan, input checks, claims, holds, retries and step errors."""
