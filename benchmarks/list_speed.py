"""The operator's side of an initial pod list, without a cluster:
``python -m benchmarks.list_speed [PODS...]``.

A stand-in API server (another process, plain HTTP) answers the pod list a
page of 500 at a time from ready-made bytes (``pod_memory``'s pods), so that
what is measured is the operator's own work: ``KubeApi.list_pages`` reading
and decoding each page, the pod ``Feed`` and ``DesiredState`` taking every
pod. Reports the operator process's CPU and wall time, and its peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import socket
import time
from typing import Any

from kitex_etcd_operator.desired import DesiredState
from kitex_etcd_operator.feeds import Feed
from kitex_etcd_operator.kube.pods import pod_view
from kitex_etcd_operator.kubeapi import KubeApi
from kitex_etcd_operator.kubeauth import Credentials
from kitex_etcd_operator.listwatch import PODS, ListWatch

from .pod_memory import page


def _serve(port: int, pods: int) -> None:
    from aiohttp import web

    pages = {str(first): page(first, min(500, pods - first), 1000, first + 500 >= pods)
             for first in range(0, pods, 500)}

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=pages[request.query.get("continue") or "0"],
                            content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v1/pods", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _list(port: int) -> dict[str, Any]:
    state = DesiredState()
    feed = Feed("Pod", upsert=state.upsert_pod, read=pod_view, remove=state.remove_pod,
                held=lambda: ((u, p.namespace, p.name) for u, p in state.pods.items()),
                changed=lambda: None, resync_period=300)
    kube = KubeApi(Credentials(server=f"http://127.0.0.1:{port}"), component="bench")
    for _ in range(100):  # the server is up once it answers
        try:
            await kube.request("GET", "/api/v1/pods")
            break
        except OSError:
            await asyncio.sleep(0.1)
    watch = ListWatch(kube, None, feed, resource=PODS, resync_period=300)
    cpu, wall = time.process_time(), time.perf_counter()
    await watch._relist("initial")
    figures = {"pods": len(state.pods), "cpu_s": time.process_time() - cpu,
               "wall_s": time.perf_counter() - wall,
               "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    await kube.close()
    return figures


def measure(pods: int) -> dict[str, Any]:
    port = _port()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(port, pods),
                                                          daemon=True)
    server.start()
    try:
        return asyncio.run(_list(port))
    finally:
        server.terminate()
        server.join()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.list_speed")
    parser.add_argument("pods", type=int, nargs="*", default=[20_000])
    for n in parser.parse_args().pods:
        r = measure(n)
        print(f"{r['pods']} pods: operator CPU {r['cpu_s']:.2f} s, wall {r['wall_s']:.2f} s, "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
