"""``python -m kitex_etcd_operator.devcluster``: the ``dev`` commands alone.

``dev up --background`` re-runs itself this way, so the daemon imports
only the dev cluster code, not the operator's.
"""

from .cli import dev

dev(prog_name="kitex-etcd-operator dev")
