"""The evaluation protocol: the balanced membership matrix, canaries and targets."""
