"""Where the API server is and how to authenticate to it: in a pod, or from a kubeconfig.

The operator used to hand this to the ``kubernetes`` client, whose API
classes cost 0.6 s and 22 MiB to build at every start (and the package
itself another 24 MiB). What the operator's own calls need is small: a
server URL, a TLS context, and a header. It is read here, as client-go
reads it:

- **In a pod**: ``KUBERNETES_SERVICE_HOST``/``_PORT`` and the ServiceAccount's
  token and CA. The token file is read again once a minute (bound tokens
  rotate; the kubelet rewrites the file).
- **A kubeconfig** (``--kubeconfig``, ``KUBECONFIG`` with several paths
  merged, else ``~/.kube/config``): its current context's server, CA
  (file or data), ``insecure-skip-tls-verify``, ``tls-server-name``,
  ``proxy-url``, client certificate and key (files or data), ``token`` or
  ``tokenFile`` (read again once a minute), or username and password.
  A user with an ``exec`` plugin or an ``auth-provider`` is left to the
  ``kubernetes`` client's loader, imported only then, which runs the plugin
  and refreshes what it returns.

Everything here reads files and may run a plugin: the callers run it
before the event loop serves anything (start-up), or in a thread.
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REFRESH = 60.0  # seconds: how often a token file (or a plugin's token) is read again


class ConfigError(Exception):
    """No usable configuration; the message says what is wrong."""


def _read(path: str | Path) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


@dataclass(slots=True)
class Token:
    """A bearer token (or a Basic header), read again every ``TOKEN_REFRESH`` seconds
    when it comes from a file or a plugin."""

    fixed: str | None = None  # the whole Authorization header value
    read: Callable[[], str] | None = None  # re-reads the header value
    value: str = ""
    read_at: float = -1e9

    def header(self) -> str | None:
        """The Authorization header now; reads the file (or plugin) when due."""
        if self.read is None:
            return self.fixed
        if self.due:
            try:
                self.value = self.read()
            except (ConfigError, OSError):
                if not self.value:
                    raise  # never read: nothing to fall back on
                # Caught mid-rotation (the kubelet swaps the file): the last token is
                # still valid for a while; the next request reads it again.
                return self.value
            self.read_at = time.monotonic()
        return self.value

    @property
    def due(self) -> bool:
        """Whether ``header()`` would read a file (or run a plugin): call it in a thread then."""
        return self.read is not None and (
            not self.value or time.monotonic() - self.read_at >= TOKEN_REFRESH)

    def expire(self) -> None:
        """A 401: read it again at the next request."""
        self.read_at = -1e9


@dataclass(slots=True)
class Credentials:
    """The API server's address and how to reach it."""

    server: str
    in_cluster: bool = False
    ca_path: str | None = None
    ca_data: str | None = None  # PEM
    insecure: bool = False
    tls_server_name: str | None = None
    cert_path: str | None = None
    key_path: str | None = None
    cert_data: str | None = None  # PEM (kept for kopf, which takes data or paths)
    key_data: str | None = None
    proxy: str | None = None
    token: Token = field(default_factory=Token)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for an https server (``None`` for plain http)."""
        if not self.server.startswith("https"):
            return None
        if self.ca_path or self.ca_data:
            context = ssl.create_default_context(cafile=self.ca_path, cadata=self.ca_data)
        else:
            context = ssl.create_default_context()
        if self.cert_path and self.key_path:
            context.load_cert_chain(self.cert_path, self.key_path)
        elif self.cert_data and self.key_data:
            _load_chain_data(context, self.cert_data, self.key_data)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def bearer(self) -> tuple[str | None, str | None]:
        """(scheme, token) of the Authorization header, as kopf's login takes them."""
        header = self.token.header()
        if not header:
            return None, None
        scheme, _, token = header.partition(" ")
        return (scheme, token) if token else ("Bearer", scheme)


def _load_chain_data(context: ssl.SSLContext, cert: str, key: str) -> None:
    """``ssl`` loads a certificate and key from files only: a private temporary
    directory holds them for the instant of the load."""
    with tempfile.TemporaryDirectory(prefix="kitex-kube-") as tmp:
        cert_path, key_path = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
        for path, pem in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(pem)
        context.load_cert_chain(str(cert_path), str(key_path))


def in_cluster(environ: Mapping[str, str] = os.environ,
               account: Path = SERVICE_ACCOUNT) -> Credentials:
    """The pod's ServiceAccount; ``ConfigError`` when not in a pod."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ConfigError("Service host/port is not set.")
    token_file, ca_file = account / "token", account / "ca.crt"
    if not token_file.is_file():
        raise ConfigError("Service token file does not exist.")
    if not ca_file.is_file() or not _read(ca_file):
        raise ConfigError("Service certification file does not exist.")

    def read_token() -> str:
        token = _read(token_file).strip()
        if not token:
            raise ConfigError("Token file exists but empty.")
        return f"Bearer {token}"

    token = Token(read=read_token)
    token.header()  # an unreadable token fails here, at start-up
    host = f"[{host}]" if ":" in host or "%" in host else host
    return Credentials(server=f"https://{host}:{port}", in_cluster=True, ca_path=str(ca_file),
                       token=token)


def _pem(data: str) -> str:
    """A kubeconfig's ``*-data``: base64 of PEM."""
    return base64.b64decode(data).decode("ascii")


def from_kubeconfig(path: str | None) -> Credentials:
    """The current context of a kubeconfig (``path`` may list several, ``:``-separated,
    merged as kubectl merges them: the first mention of a name wins)."""
    import yaml

    paths = [os.path.expanduser(p) for p in (path or "~/.kube/config").split(os.pathsep) if p]
    current: str | None = None
    found: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {
        "contexts": {}, "clusters": {}, "users": {}}
    loaded = 0
    for one in paths:
        if not os.path.exists(one):
            continue  # skipped, as the kubernetes client's loader did: none at all fails below
        config = yaml.safe_load(_read(one)) or {}
        if not isinstance(config, dict):
            raise ConfigError(f"Invalid kube-config file: {one}")
        loaded += 1
        current = current or config.get("current-context")
        base = Path(one).resolve().parent
        for kind, inner in (("contexts", "context"), ("clusters", "cluster"), ("users", "user")):
            for item in config.get(kind) or ():
                name = item.get("name") if isinstance(item, dict) else None
                if isinstance(name, str) and name not in found[kind]:
                    found[kind][name] = (item.get(inner) or {}, base)
    if not loaded:
        raise ConfigError("Invalid kube-config file. No configuration found.")
    if not current or current not in found["contexts"]:
        raise ConfigError(f"Expected key current-context in kube-config: {current!r} "
                          f"is not one of its contexts")
    context = found["contexts"][current][0]
    try:
        cluster, cluster_base = found["clusters"][context["cluster"]]
        user, user_base = found["users"].get(context.get("user", ""), ({}, cluster_base))
    except KeyError as exc:
        raise ConfigError(f"context {current} names a missing cluster: {exc}") from None
    if "server" not in cluster:
        raise ConfigError(f"cluster {context['cluster']} has no server")
    if "exec" in user or "auth-provider" in user:
        return _via_kubernetes(path)

    def file(section: dict[str, Any], base: Path, key: str) -> str | None:
        value = section.get(key)
        return str(base / value) if value else None

    token = Token()
    if user.get("tokenFile"):
        token_file = user_base / user["tokenFile"]
        token.read = lambda: f"Bearer {_read(token_file).strip()}"
        token.header()
    elif user.get("token"):
        token.fixed = f"Bearer {user['token']}"
    elif "username" in user and "password" in user:
        pair = f"{user['username']}:{user['password']}".encode()
        token.fixed = f"Basic {base64.b64encode(pair).decode('ascii')}"
    ca_data = cluster.get("certificate-authority-data")
    cert_data, key_data = user.get("client-certificate-data"), user.get("client-key-data")
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_path=file(cluster, cluster_base, "certificate-authority"),
        ca_data=_pem(ca_data) if ca_data else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name"),
        proxy=cluster.get("proxy-url"),
        cert_path=file(user, user_base, "client-certificate"),
        key_path=file(user, user_base, "client-key"),
        cert_data=_pem(cert_data) if cert_data else None,
        key_data=_pem(key_data) if key_data else None,
        token=token)


def _via_kubernetes(path: str | None) -> Credentials:
    """An exec plugin or auth-provider: the ``kubernetes`` client's loader runs it, and
    its refresh hook again when the token is due."""
    import kubernetes

    config = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, client_configuration=config)
    except kubernetes.config.ConfigException as exc:
        raise ConfigError(str(exc)) from None

    def read_token() -> str:
        if config.refresh_api_key_hook is not None:
            config.refresh_api_key_hook(config)
        keys = config.api_key or {}
        return str(keys.get("BearerToken") or keys.get("authorization") or "")

    token = Token(read=read_token)
    token.header()
    return Credentials(server=str(config.host), ca_path=config.ssl_ca_cert,
                       insecure=not config.verify_ssl,
                       tls_server_name=getattr(config, "tls_server_name", None),
                       cert_path=config.cert_file, key_path=config.key_file,
                       proxy=config.proxy, token=token)


def load(kubeconfig: str | None) -> Credentials:
    """In a pod its ServiceAccount (unless a kubeconfig is given), else the kubeconfig;
    ``ConfigError`` (with the path tried) when neither works."""
    if kubeconfig is None:
        try:
            return in_cluster()
        except (ConfigError, OSError):
            pass
    import yaml

    path = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        return from_kubeconfig(path)
    except (ConfigError, OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
        raise ConfigError(str(exc) if isinstance(exc, ConfigError)
                          else f"{type(exc).__name__}: {exc}") from None
