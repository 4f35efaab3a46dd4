"""Faults one at a time: etcd, the API server, bad input, leader failover."""
