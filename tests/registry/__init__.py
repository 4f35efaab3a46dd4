"""The registry core (leases, ownership, plans) against a real etcd, with the
controller in process.
"""
