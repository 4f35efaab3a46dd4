"""A real local cluster on 127.0.0.1: etcd, a Kubernetes control plane and kwok nodes.

Used by the test fixtures, ``make cluster-up`` and ``make demo``; never by the
operator itself. A development package of its own (``devtools/``): it is in
neither the wheel nor the image. Command line: ``kitex-devcluster build|up|down|demo``.
"""
