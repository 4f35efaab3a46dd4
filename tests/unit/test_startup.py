"""The start-up helpers: what they skip, and that they leave the process as they found it.

Each check runs in a fresh interpreter: imports and the collector are
process-wide, and this test process has long imported aiohttp.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kitex_devcluster.pki import make_ca

_PROBE = """
import gc, json, os, ssl
from kitex_etcd_operator.startup import collector_paused, import_aiohttp
with collector_paused():
    paused = gc.isenabled()
    import_aiohttp()
import aiohttp.connector as connector
print(json.dumps({
    "paused": paused, "enabled_after": gc.isenabled(),
    "default_cas": connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"],
    "unverified_cas": connector._SSL_CONTEXT_UNVERIFIED.cert_store_stats()["x509_ca"],
    "cert_file": os.environ.get("SSL_CERT_FILE"), "cert_dir": os.environ.get("SSL_CERT_DIR"),
    "later_context_cas": ssl.create_default_context().cert_store_stats()["x509_ca"],
}))
"""


def _probe(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                          text=True, check=True, timeout=60)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_aiohttp_defaults_trust_no_one_and_the_environment_is_given_back(
        tmp_path: Path) -> None:
    """A CA bundle named by SSL_CERT_FILE is the user's: hidden from aiohttp's two
    import-time contexts (which the operator never uses, so they must fail closed),
    and in place again for every context made afterwards."""
    bundle = make_ca("startup-test").write(tmp_path, "ca")
    env = {**os.environ, "SSL_CERT_FILE": str(bundle)}
    env.pop("SSL_CERT_DIR", None)
    seen = _probe(env)
    assert seen["default_cas"] == 0
    assert seen["unverified_cas"] == 0
    assert seen["cert_file"] == str(bundle)
    assert seen["cert_dir"] is None
    assert seen["later_context_cas"] == 1
    assert seen["paused"] is False
    assert seen["enabled_after"] is True


def test_the_kube_client_never_falls_back_on_aiohttp_defaults() -> None:
    """Why hiding the CAs at import is safe: an https server always gets a context of
    the operator's own, with the system CAs loaded then when no CA is configured."""
    from kitex_etcd_operator.kubeauth import Credentials

    context = Credentials(server="https://127.0.0.1:6443").ssl_context()
    assert context is not None
    assert Credentials(server="http://127.0.0.1:8080").ssl_context() is None


def test_the_collector_is_paused_while_starting_and_resumes_at_the_freeze() -> None:
    code = """
import asyncio, gc, json
from kitex_etcd_operator import startup
async def main():
    startup.pause_collector(asyncio.get_running_loop())
    during = gc.isenabled()
    startup.freeze_heap()
    return during, gc.isenabled(), gc.get_freeze_count() > 0
print(json.dumps(asyncio.run(main())))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert json.loads(done.stdout) == [False, True, True]


def test_a_standby_gets_the_collector_back_without_syncing() -> None:
    """A replica that never leads never reaches the freeze: the pause has a limit."""
    code = """
import asyncio, gc, json
from kitex_etcd_operator import startup
startup.GC_PAUSE_LIMIT = 0.05
async def main():
    startup.pause_collector(asyncio.get_running_loop())
    during = gc.isenabled()
    for _ in range(200):
        if gc.isenabled():
            break
        await asyncio.sleep(0.05)
    return during, gc.isenabled()
print(json.dumps(asyncio.run(main())))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert json.loads(done.stdout) == [False, True]
