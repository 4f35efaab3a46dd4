"""Command-line options shared by ``run`` and the one-shot commands.

The click side of settings lives here alone, so that the modules below the
command line (durations, settings, the parsers) stay free of click and can be
used and tested as plain functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from .durations import DIAL_TIMEOUT, out_of_bounds, parse_duration
from .etcd.channel import MAX_MESSAGE, set_max_response
from .model import DEFAULT_PREFIX
from .settings import DefaultEtcd


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A click parameter that takes Go durations, optionally within bounds."""

    name = "duration"

    def __init__(self, bounds: tuple[float, float] | None = None) -> None:
        self.bounds = bounds

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        why = out_of_bounds(seconds, self.bounds) if self.bounds else None
        if why:
            self.fail(f"{value!r} {why}", param, ctx)
        return seconds


def etcd_options(fn: Any) -> Any:
    """The default etcd's flags: shared by ``run``, ``resolve``, ``diff`` and ``purge``."""
    options = [
        click.option("--etcd-endpoints", envvar="KITEX_ETCD_ENDPOINTS", default="127.0.0.1:2379",
                     show_default=True, help="Comma-separated etcd endpoints, tried in turn."),
        click.option("--etcd-username", envvar="KITEX_ETCD_USERNAME"),
        click.option("--etcd-password-file", envvar="KITEX_ETCD_PASSWORD_FILE",
                     type=click.Path(dir_okay=False, path_type=Path),
                     help="File holding the etcd password (or set KITEX_ETCD_PASSWORD)."),
        click.option("--etcd-ca", envvar="KITEX_ETCD_CA", type=click.Path(path_type=Path),
                     help="CA certificate (PEM) that signed etcd's server certificate."),
        click.option("--etcd-cert", envvar="KITEX_ETCD_CERT", type=click.Path(path_type=Path),
                     help="Client certificate (PEM) for mutual TLS."),
        click.option("--etcd-key", envvar="KITEX_ETCD_KEY", type=click.Path(path_type=Path),
                     help="Client key (PEM) for mutual TLS."),
        click.option("--etcd-secret", envvar="KITEX_ETCD_SECRET", metavar="NAMESPACE/NAME",
                     help="A Secret with username/password and/or ca.crt/tls.crt/tls.key."),
        click.option("--etcd-dial-timeout", envvar="KITEX_ETCD_DIAL_TIMEOUT",
                     type=Duration(DIAL_TIMEOUT),
                     default="5s", show_default=True),
        click.option("--etcd-max-response-size", envvar="KITEX_ETCD_MAX_RESPONSE_SIZE",
                     type=click.IntRange(1024 * 1024, 2**31 - 1), default=MAX_MESSAGE,
                     show_default=True,
                     help="Cap on one etcd response, in bytes (a range read of a service)."),
        click.option("--prefix", envvar="KITEX_ETCD_PREFIX", default=DEFAULT_PREFIX,
                     show_default=True, help="Default key prefix (WithEtcdServicePrefix)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def default_etcd(kw: dict[str, Any]) -> DefaultEtcd:
    set_max_response(kw["etcd_max_response_size"])
    password = os.environ.get("KITEX_ETCD_PASSWORD")
    if kw["etcd_password_file"]:
        password = kw["etcd_password_file"].read_text().strip()
    if bool(kw["etcd_cert"]) != bool(kw["etcd_key"]):
        raise click.UsageError("--etcd-cert and --etcd-key go together")
    if kw["etcd_username"] and password is None:
        raise click.UsageError("--etcd-username needs --etcd-password-file or KITEX_ETCD_PASSWORD")
    endpoints = tuple(e.strip() for e in kw["etcd_endpoints"].split(",") if e.strip())
    if not endpoints:
        raise click.UsageError("--etcd-endpoints names no endpoint")
    return DefaultEtcd(endpoints=endpoints, username=kw["etcd_username"], password=password,
                       ca_file=kw["etcd_ca"], cert_file=kw["etcd_cert"],
                       key_file=kw["etcd_key"], secret=kw["etcd_secret"],
                       dial_timeout=kw["etcd_dial_timeout"])
