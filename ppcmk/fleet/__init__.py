"""Fleet runs: which environments (selection), in which waves and how many at once (waves), and a run that
stops waiting for a long operation and resumes later (parking)."""
