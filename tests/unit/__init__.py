"""Pure functions, without a cluster."""
