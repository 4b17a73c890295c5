"""The audit trail: hash-chained entries and the store every worker appends to."""
