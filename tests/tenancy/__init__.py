"""Teams sharing one cluster, and what a hostile tenant cannot do."""
