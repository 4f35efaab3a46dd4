"""``python -m kitex_devcluster``: the same commands as ``kitex-devcluster``.

``up --background`` re-runs itself this way, so the daemon imports only the
dev cluster code, not the operator's.
"""

from .cli import main

main(prog_name="kitex-devcluster")
