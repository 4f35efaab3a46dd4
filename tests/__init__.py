"""The test suite: real etcd, a real Kubernetes control plane and real Kitex
programs, started by the fixtures in conftest.py.
"""
