"""kitex-etcd-operator: registers ready pods as Kitex instances in etcd.

The layers, from the command line down to the wire format, are written down
as import-linter contracts in pyproject.toml (``make lint``) and described,
one paragraph each, in docs/architecture.md.
"""

__version__ = "0.1.0"
