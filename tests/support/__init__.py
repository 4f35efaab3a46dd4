"""What many tests share: waiting with deadlines, object factories, an etcdctl
probe, the operator as a process, a TCP proxy that cuts streams.
"""
