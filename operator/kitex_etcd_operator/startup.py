"""What the process start costs, kept down: leaner third-party imports, and the
cyclic garbage collector held off while the operator starts.

Process start to ``/readyz`` with 100 pods has a budget of one second, and
about half of it is imports. These helpers sit under every layer (stdlib
only) because the command line calls them before it imports anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
from collections.abc import Iterator

# The collector comes back at the end of the first sync, or this long after the
# start, whichever is first: a standby replica, which does not sync until it
# leads, must not run without it.
GC_PAUSE_LIMIT = 60.0
_CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")


def import_aiohttp() -> None:
    """aiohttp, without parsing the system's CA bundle twice at import.

    ``aiohttp.connector`` builds two default TLS contexts when it is imported,
    and each loads every system CA: 40 to 100 ms of every start here. The
    operator never uses them: each session it opens (``KubeApi``'s and kopf's)
    passes a context of its own, made from the kubeconfig or the ServiceAccount's
    CA (with the system CAs, loaded then, only when no CA is given). The bundle
    is hidden while aiohttp is imported, so those two defaults trust no one: a
    request that ever fell back on them would fail verification, never pass it.
    """
    if "aiohttp" in sys.modules:
        return
    saved = {name: os.environ.get(name) for name in _CA_VARIABLES}
    os.environ.update(dict.fromkeys(_CA_VARIABLES, os.devnull))
    try:
        import aiohttp.connector  # noqa: F401
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def import_kopf() -> None:
    """kopf, without the ``kubernetes`` client it would import along.

    kopf imports the client's model classes whenever the package is installed
    (only to recognise such objects if a handler hands it one; ours never do):
    22 MiB and 0.25 s of every start, the client package with its urllib3,
    pydantic and oauthlib. Hidden while kopf is imported, the package stays
    importable afterwards (``kubeauth`` uses it for kubeconfig exec plugins).
    """
    if "kopf" in sys.modules or "kubernetes" in sys.modules:
        return
    sys.modules["kubernetes"] = None  # type: ignore[assignment]  # "not installed"
    try:
        import kopf  # noqa: F401
    finally:
        del sys.modules["kubernetes"]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection while the modules are imported.

    What an import allocates (classes, functions, module dicts) lives as long
    as the process: each collection on the way walks it all for nothing, 20 to
    35 ms of the imports measured.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def pause_collector(loop: asyncio.AbstractEventLoop) -> None:
    """No cyclic collection until the first sync is done (``freeze_heap``), for at
    most ``GC_PAUSE_LIMIT`` seconds.

    The first sync builds the state the operator keeps (every pod's view,
    every desired entry), and collections during it walked that growing heap
    again and again: about 50 ms of a 100-pod start, more at scale. What the
    sync leaves as garbage is mostly freed by reference counting; the rest is
    collected when the collector resumes.
    """
    gc.disable()
    loop.call_later(GC_PAUSE_LIMIT, gc.enable)


def freeze_heap() -> None:
    """Once the initial lists are applied, and again once the first writes are done:
    what is alive then (modules, every pod's view and desired entry, what the writes
    keep of etcd) is left out of every later garbage collection, and collection resumes.

    A full collection walked all of it: 34 ms at 30,000 pods (about 100 ms at
    100,000), during which no event is handled, the tail of churn latency.
    Reference counting still frees these objects; only a reference cycle among
    them would never be collected, and the state holds none.
    """
    gc.collect()
    gc.freeze()
    gc.enable()
