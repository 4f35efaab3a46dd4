"""The user of the auth-enabled test etcd, shared by its fixture and its tests."""

AUTH_USER = "kitex"
AUTH_PASSWORD = "s3cr3t-Pa55word-for-kitex"
AUTH_PREFIX = "kitex/"
AUTH_TOKEN_TTL = 2  # seconds of idleness after which etcd forgets a simple token
