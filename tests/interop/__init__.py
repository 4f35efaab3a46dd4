"""Real Kitex clients and servers (Go) against the operator's entries."""
