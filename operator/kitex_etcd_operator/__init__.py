"""kitex-etcd-operator: registers ready pods as Kitex instances in etcd.

Layers, each importing only the ones above it in this list:

- ``model``, ``encoding``: what a Kitex instance is and its exact bytes in etcd.
- ``plan``: the pure diff between what Kubernetes wants and what etcd holds.
- ``etcd``: the connection layer on aetcd (endpoints, TLS, auth).
- ``registry``: ownership, leases and batched writes against one etcd target.
- ``kube``: reading pods and KitexServices into desired instances (pure).
- ``controller``: the loops that tie the two together.
- ``handlers``: the thin kopf glue; ``cli``: the command line.
"""

__version__ = "0.1.0"
