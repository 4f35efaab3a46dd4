"""``python -m kitex_etcd_operator`` is the console command."""

from .cli import main

main()
