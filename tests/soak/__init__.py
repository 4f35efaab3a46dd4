"""The randomized fault soak: a workload, a nemesis and an independent checker."""
