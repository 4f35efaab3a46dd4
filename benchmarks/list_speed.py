"""The operator's side of an initial pod list, without a cluster:
``python -m benchmarks.list_speed [--sync] [PODS...]``.

A stand-in API server (another process, plain HTTP) answers the pod list a
page of 500 at a time from ready-made bytes (``pod_memory``'s pods), so that
what is measured is the operator's own work: ``KubeApi.list_pages`` reading
and decoding each page, the pod ``Feed`` and ``DesiredState`` taking every
pod. Reports the operator process's CPU and wall time, and its peak RSS.

With ``--sync``, the whole ``Controller`` runs instead, into a fresh etcd (the
cached build): lists, then 1,000 services written, until every binding has
made its first attempt (what ``/readyz`` waits for). Still no kopf.
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

    async def empty(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch"):  # a watch with nothing to say, until its timeout
            response = web.StreamResponse()
            await response.prepare(request)
            await asyncio.sleep(float(request.query.get("timeoutSeconds") or 60))
            return response
        return web.json_response({"metadata": {"resourceVersion": "200000"}, "items": []})

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "code": 404}, status=404)

    async def pods_or_watch(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") or request.query.get("limit") == "1":
            return await empty(request)
        return await handle(request)

    app = web.Application()
    app.router.add_get("/api/v1/pods", pods_or_watch)
    for path in ("/api/v1/namespaces", "/api/v1/services",
                 "/apis/discovery.k8s.io/v1/endpointslices"):
        app.router.add_get(path, empty)
    app.router.add_get("/apis/{rest:.*}", missing)
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


async def _sync(port: int, endpoints: list[str]) -> dict[str, Any]:
    from kitex_etcd_operator.controller import Controller
    from kitex_etcd_operator.settings import DefaultEtcd, Settings

    kube = KubeApi(Credentials(server=f"http://127.0.0.1:{port}"), component="bench")
    for _ in range(100):
        try:
            await kube.request("GET", "/api/v1/namespaces")
            break
        except OSError:
            await asyncio.sleep(0.1)
    cpu, wall = time.process_time(), time.perf_counter()
    controller = Controller(Settings(etcd=DefaultEtcd(endpoints=tuple(endpoints))), kube)
    controller.watch_pods()
    starting = asyncio.create_task(controller.start())
    listed, deadline = 0.0, time.monotonic() + 600
    while not (controller.synced.is_set() and controller.ready):
        if time.monotonic() > deadline:
            raise TimeoutError("the controller did not attempt every service in 10 min")
        await asyncio.sleep(0.02)
        if not listed and controller.synced.is_set():
            listed = time.perf_counter() - wall
    figures = {"pods": len(controller.state.pods), "cpu_s": time.process_time() - cpu,
               "wall_s": time.perf_counter() - wall, "listed_s": listed,
               "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    await starting
    await controller.stop()
    await kube.close()
    return figures


def measure(pods: int, sync: bool = False) -> dict[str, Any]:
    import tempfile
    from pathlib import Path

    port = _port()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(port, pods),
                                                          daemon=True)
    server.start()
    try:
        if not sync:
            return asyncio.run(_list(port))
        from kitex_devcluster.etcd import EtcdCluster

        with tempfile.TemporaryDirectory(prefix="kitex-sync-speed-") as tmp:
            etcd = EtcdCluster.start(Path(tmp) / "etcd")
            try:
                return asyncio.run(_sync(port, etcd.endpoints))
            finally:
                etcd.stop()
    finally:
        server.terminate()
        server.join()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.list_speed")
    parser.add_argument("pods", type=int, nargs="*", default=[20_000])
    parser.add_argument("--sync", action="store_true",
                        help="the whole controller into a fresh etcd, until every service "
                             "was attempted")
    args = parser.parse_args()
    for n in args.pods:
        r = measure(n, args.sync)
        listed = f" (listed at {r['listed_s']:.2f} s)" if args.sync else ""
        print(f"{r['pods']} pods: operator CPU {r['cpu_s']:.2f} s, wall {r['wall_s']:.2f} s"
              f"{listed}, peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
