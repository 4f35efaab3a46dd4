"""The etcd connection layer against real etcd: failover, TLS, auth, quotas, replays."""
