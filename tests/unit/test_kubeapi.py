"""The operator's own API calls (``kubeapi``) and credentials (``kubeauth``), against a
small API server of aiohttp here: TLS with a client certificate, tokens that
rotate, pages, watch streams, errors. No cluster: the cluster suites run the
same calls against a real API server."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from kitex_devcluster.pki import issue, make_ca
from kitex_etcd_operator import kubeauth
from kitex_etcd_operator.kube import podproto
from kitex_etcd_operator.kubeapi import (
    ApiError,
    CrdMissing,
    KubeApi,
    NoKubeConfig,
    ObjectRef,
    SecretNotFound,
    SecretUnusable,
)
from kitex_etcd_operator.leader import ElectionConfig, LeaderElector, LostLeadership
from kitex_etcd_operator.listwatch import PODS, Gone, ListWatch
from kitex_etcd_operator.supervisor import Supervisor
from tests.support.helpers import async_wait_for


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def pod(n: int, version: int = 1) -> dict[str, Any]:
    return {"metadata": {"uid": f"u{n}", "namespace": "ns", "name": f"p{n}",
                         "resourceVersion": str(version), "labels": {"app": "a"}},
            "spec": {"containers": [{"ports": [{"containerPort": 8888}]}]},
            "status": {"podIP": f"10.0.0.{n}", "conditions": [{"type": "Ready",
                                                                 "status": "True"}]}}


class FakeApi:
    """What the operator asks of an API server, and what it was sent."""

    def __init__(self) -> None:
        self.token = "first"
        self.requests: list[tuple[str, str, str, Any]] = []  # method, path, content type, body
        self.lease: dict[str, Any] | None = None
        self.watch_lines: list[bytes] = []
        self.watch_status = 200
        self.pages = [[pod(1), pod(2)], [pod(3)]]
        self.accepts: list[str] = []  # the Accept header of each list page asked for
        self.broken_protobuf = False  # answer pod pages asked for as protobuf with garbage
        self.leases_answered = asyncio.Event()  # cleared: Lease calls hang (a black hole)
        self.leases_answered.set()
        self.lease_garbage = False  # answer a Lease GET with a body that is no object

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.auth])
        app.router.add_route("*", "/{path:.*}", self.handle)
        return app

    @web.middleware
    async def auth(self, request: web.Request,
                   handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"kind": "Status", "message": "Unauthorized"},
                                     status=401)
        response: web.StreamResponse = await handler(request)
        return response

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        path = "/" + request.match_info["path"]
        self.requests.append((request.method, path, request.content_type, body))
        if path == "/api/v1/pods" and request.query.get("watch"):
            return await self.watch(request)
        if path == "/api/v1/pods":
            if "limit" not in request.query:  # the whole list, from the cache: as JSON here
                assert request.query["resourceVersionMatch"] == "NotOlderThan"
                self.accepts.append(request.headers.get("Accept", ""))
                return web.json_response({"metadata": {"resourceVersion": "7"},
                                          "items": [p for page in self.pages for p in page]})
            index = int(request.query.get("continue") or 0)
            assert request.query["limit"] in ("1", "500", str(podproto.CODEC.page_size))
            self.accepts.append(request.headers.get("Accept", ""))
            if self.broken_protobuf and podproto.MEDIA_TYPE in request.headers.get("Accept", ""):
                return web.Response(body=podproto.MAGIC + b"\x12\xff\xff\xff\xff\x0f",
                                    content_type=podproto.MEDIA_TYPE)
            more = index + 1 < len(self.pages)
            return web.json_response({"metadata": {"resourceVersion": "7",
                                                   "continue": str(index + 1) if more else ""},
                                      "items": self.pages[index]})
        if path.endswith("/secrets/creds"):
            return web.json_response({"type": "kitex.cloudwego.io/etcd-credentials",
                                      "data": {"username": b64(b"root")}})
        if path.endswith("/secrets/missing"):
            return web.json_response({"message": "not found"}, status=404)
        if "/kitexservices" in path and request.method == "GET":
            return web.json_response({"message": "the server could not find it"}, status=404)
        if path.startswith("/apis/coordination.k8s.io/"):
            await self.leases_answered.wait()
            if self.lease_garbage and request.method == "GET":
                return web.json_response(["not", "a", "Lease"])
            return self.leases(request.method, body)
        return web.json_response(body or {})

    def leases(self, method: str, body: Any) -> web.Response:
        if method == "GET":
            if self.lease is None:
                return web.json_response({"message": "not found"}, status=404)
            return web.json_response(self.lease)
        version = int((self.lease or {}).get("metadata", {}).get("resourceVersion") or 0)
        if method == "PUT" and body["metadata"].get("resourceVersion") != str(version):
            return web.json_response({"message": "conflict"}, status=409)
        self.lease = body
        self.lease["metadata"]["resourceVersion"] = str(version + 1)
        return web.json_response(self.lease)

    async def watch(self, request: web.Request) -> web.StreamResponse:
        assert request.query["allowWatchBookmarks"] == "true"
        if self.watch_status != 200:
            return web.json_response({"message": "too old"}, status=self.watch_status)
        response = web.StreamResponse()
        await response.prepare(request)
        for line in self.watch_lines:
            for i in range(0, len(line), 1000):  # lines cut across chunks
                await response.write(line[i:i + 1000])
        await response.write_eof()
        return response


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    ca = make_ca("test-ca")
    server = issue(ca, "apiserver", sans=["127.0.0.1"], client=False)
    client = issue(ca, "operator", server=False)
    paths = {}
    for name, pem in (("ca.crt", ca.cert_pem), ("server.crt", server[0]),
                      ("server.key", server[1]), ("client.crt", client[0]),
                      ("client.key", client[1])):
        paths[name] = tmp_path / name
        paths[name].write_bytes(pem)
    return {"ca": ca, "client": client, "paths": paths}


@pytest.fixture
async def api(pki: dict[str, Any]) -> AsyncIterator[tuple[FakeApi, str]]:
    """The fake API server on https, asking for a client certificate of the CA."""
    fake = FakeApi()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH,
                                         cafile=str(pki["paths"]["ca.crt"]))
    context.load_cert_chain(pki["paths"]["server.crt"], pki["paths"]["server.key"])
    context.verify_mode = ssl.CERT_REQUIRED
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fake, f"https://127.0.0.1:{port}"
    finally:
        fake.leases_answered.set()  # a hung handler would hold up the cleanup
        await runner.cleanup()


def kubeconfig(path: Path, server: str, user: dict[str, Any], **cluster: Any) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def client_kubeconfig(tmp_path: Path, server: str, pki: dict[str, Any],
                      token: str = "first") -> Path:
    """Certificates inline (as the test clusters write them) and a token."""
    return kubeconfig(tmp_path / "kubeconfig", server, {
        "client-certificate-data": b64(pki["client"][0]),
        "client-key-data": b64(pki["client"][1]), "token": token},
        **{"certificate-authority-data": b64(pki["ca"].cert_pem)})


async def test_lists_pages_secrets_and_writes_over_tls_with_a_client_certificate(
        api: tuple[FakeApi, str], pki: dict[str, Any], tmp_path: Path) -> None:
    fake, server = api
    kube = KubeApi.from_environment(str(client_kubeconfig(tmp_path, server, pki)))
    try:
        views = await kube.list_pods()
        assert [v.name for v in views] == ["p1", "p2", "p3"]
        assert views[0].ready and views[0].pod_ips == ("10.0.0.1",)
        assert await kube.current_version("/api/v1/pods") == "7"
        assert await kube.read_secret("ns", "creds") == {"username": b"root"}
        with pytest.raises(SecretUnusable, match="has type"):
            await kube.read_secret("ns", "creds", secret_type="Opaque")
        with pytest.raises(SecretNotFound, match="not found"):
            await kube.read_secret("ns", "missing")
        with pytest.raises(CrdMissing):
            await kube.list_kitexservices()
        await kube.patch_status("ns", "svc", {"ready": 1})
        await kube.set_finalizer("ns", "svc", ["other"], True, "mine")
        await kube.post_event(ObjectRef("KitexService", "v1", "ns", "svc", "uid-1"),
                              reason="Refused", message="m")
        await kube.post_event(ObjectRef("KitexService", "v1", "ns", "svc", "uid-1"),
                              reason="Refused", message="m")  # a repeat is not posted
    finally:
        await kube.close()
    writes = [r for r in fake.requests if r[0] != "GET"]
    assert writes[0] == ("PATCH", "/apis/kitex.cloudwego.io/v1alpha1/namespaces/ns/"
                         "kitexservices/svc/status", "application/merge-patch+json",
                         {"status": {"ready": 1}})
    assert writes[1][2] == "application/json-patch+json"
    assert writes[1][3][0] == {"op": "test", "path": "/metadata/finalizers",
                               "value": ["other"]}
    method, path, _, event = writes[2]
    assert (method, path, len(writes)) == ("POST", "/api/v1/namespaces/ns/events", 3)
    assert event["involvedObject"]["uid"] == "uid-1" and event["type"] == "Warning"
    assert event["metadata"]["generateName"] == "svc."


async def test_a_client_without_the_ca_refuses_the_server(
        api: tuple[FakeApi, str], pki: dict[str, Any], tmp_path: Path) -> None:
    _, server = api
    other = make_ca("someone-else")
    path = kubeconfig(tmp_path / "kc", server, {"token": "first"},
                      **{"certificate-authority-data": b64(other.cert_pem)})
    kube = KubeApi.from_environment(str(path))
    try:
        with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
            await kube.list_pods()
    finally:
        await kube.close()


async def test_a_rotated_token_file_is_read_again_after_a_401(
        api: tuple[FakeApi, str], pki: dict[str, Any], tmp_path: Path) -> None:
    fake, server = api
    token = tmp_path / "token"
    token.write_text("first\n")
    path = kubeconfig(tmp_path / "kc", server, {
        "client-certificate": str(pki["paths"]["client.crt"]),
        "client-key": "client.key",  # relative: to the kubeconfig's directory
        "tokenFile": "token"}, **{"certificate-authority": str(pki["paths"]["ca.crt"])})
    kube = KubeApi.from_environment(str(path))
    try:
        assert len(await kube.list_pods()) == 3
        fake.token = "second"
        token.write_text("second")
        assert len(await kube.list_pods()) == 3  # a 401, the file again, the same call
        statuses = [r[1] for r in fake.requests]
        assert statuses.count("/api/v1/pods") == 4
    finally:
        await kube.close()


def test_in_cluster_credentials_and_the_token_read_again(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t1")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    creds = kubeauth.in_cluster(env, tmp_path)
    assert creds.server == "https://[fd00::1]:443" and creds.in_cluster
    assert creds.ca_path == str(tmp_path / "ca.crt")
    assert creds.bearer() == ("Bearer", "t1")
    (tmp_path / "token").write_text("t2")
    assert creds.bearer() == ("Bearer", "t1")  # read again once a minute, not per call
    creds.token.expire()
    assert creds.token.due and creds.bearer() == ("Bearer", "t2")
    (tmp_path / "token").write_text("")  # caught mid-rotation: the last one serves
    creds.token.expire()
    assert creds.bearer() == ("Bearer", "t2") and creds.token.due
    with pytest.raises(kubeauth.ConfigError, match="host/port"):
        kubeauth.in_cluster({}, tmp_path)


def test_kubeconfigs_merge_and_errors_say_what_to_pass(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    first = kubeconfig(tmp_path / "a", "https://a:6443/", {"username": "u", "password": "p"},
                       **{"insecure-skip-tls-verify": True, "proxy-url": "http://proxy:3128",
                          "tls-server-name": "api"})
    second = tmp_path / "b"
    second.write_text(yaml.safe_dump({"current-context": "other", "contexts": []}))
    creds = kubeauth.from_kubeconfig(f"{first}:{second}:{tmp_path / 'absent'}")
    assert creds.server == "https://a:6443" and creds.insecure
    assert (creds.proxy, creds.tls_server_name) == ("http://proxy:3128", "api")
    assert creds.token.header() == "Basic " + b64(b"u:p")
    context = creds.ssl_context()
    assert context is not None and context.verify_mode == ssl.CERT_NONE
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(NoKubeConfig, match=f"the kubeconfig {second} could not be loaded"):
        KubeApi.from_environment(str(second))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(NoKubeConfig, match="not running in a pod and no kubeconfig found: "
                                           "pass --kubeconfig PATH or set KUBECONFIG"):
        KubeApi.from_environment(None)


def test_kopf_gets_the_same_credentials(tmp_path: Path, pki: dict[str, Any]) -> None:
    kube = KubeApi.from_environment(str(client_kubeconfig(tmp_path, "https://h:1", pki)))
    info = kube.connection_info()
    assert (info.server, info.scheme, info.token) == ("https://h:1", "Bearer", "first")
    assert base64.b64decode(info.ca_data) == pki["ca"].cert_pem
    assert base64.b64decode(info.certificate_data) == pki["client"][0]
    info.as_ssl_context()  # kopf can build its TLS context from them


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str | None, str]] = []
        self.listed_uids: set[str] = set()

    def on_item(self, event_type: str | None, item: Any) -> None:
        self.events.append((event_type, item.view().name))

    def listed(self, namespace: str | None, uids: set[str], started: float) -> None:
        self.listed_uids = uids


async def test_a_watch_stream_reads_long_lines_bookmarks_and_410(
        api: tuple[FakeApi, str], pki: dict[str, Any], tmp_path: Path) -> None:
    fake, server = api
    big = pod(4, version=9)
    big["metadata"]["annotations"] = {"note": "x" * 300_000}  # a line over 128 KiB
    fake.watch_lines = [
        json.dumps({"type": "MODIFIED", "object": pod(1, version=8)}).encode() + b"\n",
        json.dumps({"type": "ADDED", "object": big}).encode() + b"\n",
        json.dumps({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}})
        .encode() + b"\n"]
    kube = KubeApi.from_environment(str(client_kubeconfig(tmp_path, server, pki)))
    sink = Sink()
    watch = ListWatch(kube, None, sink, resource=PODS, resync_period=3600)
    try:
        version = await watch._relist("initial")
        assert version == "7" and sink.listed_uids == {"u1", "u2", "u3"}
        assert await watch._watch(version, 5) == "12"
        assert sink.events[-2:] == [("MODIFIED", "p1"), ("ADDED", "p4")]
        fake.watch_lines = [json.dumps({"type": "ERROR", "object": {
            "kind": "Status", "code": 410, "message": "too old"}}).encode() + b"\n"]
        with pytest.raises(Gone, match="too old"):
            await watch._watch("12", 5)
        fake.watch_status = 410
        with pytest.raises(Gone):
            await watch._watch("12", 5)
        fake.watch_status = 500
        with pytest.raises(ApiError, match=r"\(500\)"):
            await watch._watch("12", 5)
    finally:
        await kube.close()
    assert podproto.CODEC is PODS.codec


async def test_leader_election_takes_renews_and_releases_the_lease(
        api: tuple[FakeApi, str], pki: dict[str, Any], tmp_path: Path) -> None:
    fake, server = api
    kube = KubeApi.from_environment(str(client_kubeconfig(tmp_path, server, pki)))
    elector = LeaderElector(kube, ElectionConfig(namespace="ns", identity="me",
                                                 retry_period=0.01))
    task = asyncio.create_task(elector.run())
    try:
        await asyncio.wait_for(elector.leading.wait(), 10)
        assert fake.lease is not None
        spec = fake.lease["spec"]
        assert spec["holderIdentity"] == "me" and spec["renewTime"].endswith("Z")
        async def renewed() -> bool:  # by a PUT
            return int((fake.lease or {})["metadata"]["resourceVersion"]) >= 3

        await async_wait_for(renewed, timeout=10, what="a renewal", interval=0.01)
        assert fake.lease["spec"]["acquireTime"] == spec["acquireTime"]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await elector.release()
        assert fake.lease["spec"]["holderIdentity"] == ""
        assert fake.lease["spec"]["leaseDurationSeconds"] == 1
    finally:
        task.cancel()
        await kube.close()


async def test_a_leader_whose_renewal_hangs_steps_down_at_its_renew_deadline(
        api: tuple[FakeApi, str], pki: dict[str, Any], tmp_path: Path) -> None:
    """Before, the deadline was checked only once a call returned: a black-holed API
    server kept ``leading`` set for a call timeout (60 s) per call, while the standby
    took over after ``lease_duration``: two writers."""
    fake, server = api
    kube = KubeApi.from_environment(str(client_kubeconfig(tmp_path, server, pki)))
    config = ElectionConfig(namespace="ns", identity="me", lease_duration=1.5,
                            renew_deadline=0.5, retry_period=0.05)
    elector = LeaderElector(kube, config)
    task = asyncio.create_task(elector.run())
    try:
        await asyncio.wait_for(elector.leading.wait(), 10)
        fake.leases_answered.clear()
        loop = asyncio.get_running_loop()
        blackholed = loop.time()
        with pytest.raises(LostLeadership):
            await asyncio.wait_for(task, 10)
        assert not elector.leading.is_set()
        # Down before the standby could take over (its clock starts at the last write).
        assert loop.time() - blackholed < config.lease_duration
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await kube.close()


async def test_a_bug_in_the_election_while_leading_steps_down(
        api: tuple[FakeApi, str], pki: dict[str, Any], tmp_path: Path) -> None:
    """Before, an error other than an API error went to the supervisor, which started
    the election again after its backoff, ``leading`` still set and nobody renewing."""
    fake, server = api
    kube = KubeApi.from_environment(str(client_kubeconfig(tmp_path, server, pki)))
    elector = LeaderElector(kube, ElectionConfig(namespace="ns", identity="me",
                                                 retry_period=0.05))
    supervisor = Supervisor(backoff_initial=0.01, backoff_max=0.02)
    task = supervisor.spawn("leader-election", "me", elector.run, fatal=(LostLeadership,))
    try:
        await asyncio.wait_for(elector.leading.wait(), 10)
        fake.lease_garbage = True
        with pytest.raises(LostLeadership) as lost:
            await asyncio.wait_for(task, 10)
        assert isinstance(lost.value.__cause__, AttributeError)
        assert not elector.leading.is_set()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await kube.close()


async def test_a_pod_page_the_protobuf_reader_refuses_is_asked_for_again_as_json(
        api: tuple[FakeApi, str], pki: dict[str, Any], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    fake, server = api
    fake.broken_protobuf = True
    kube = KubeApi.from_environment(str(client_kubeconfig(tmp_path, server, pki)))
    try:
        pods = await kube.list_pods()
    finally:
        await kube.close()
    assert [p.uid for p in pods] == ["u1", "u2", "u3"]
    # each page: protobuf first (JSON accepted too), then JSON alone
    assert fake.accepts == [podproto.CODEC.page_types, "application/json"] * 2
    assert "again as JSON" in caplog.text
