"""The HTTP endpoints a Deployment and Prometheus need: /healthz, /readyz, /metrics.

Readiness turns true only after the initial sync, so a rollout of the
operator waits until the new replica has caught up with every service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import prometheus_client
from aiohttp import web


async def serve(host: str, port: int, *, ready: Callable[[], bool],
                alive: Callable[[], bool]) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n") if alive() else web.Response(status=503, text="dead\n")

    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="initial sync not complete\n")

    async def metrics(_: web.Request) -> web.Response:
        # In a thread: with a thousand services the text takes tens of ms to render,
        # a stall of every event in flight at each scrape if done on the loop. The
        # thread gives the GIL back every few ms, so events go on between.
        body = await asyncio.to_thread(prometheus_client.generate_latest)
        return web.Response(body=body,
                            headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    app = web.Application()
    app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz),
                    web.get("/metrics", metrics)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
