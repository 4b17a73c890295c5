"""Approvals: asking for one, proving who answered, judging the answer, the forms and events."""
