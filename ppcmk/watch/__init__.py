"""Watch: the estate's facts, the drift rules, the desired state and converge."""
