"""Logs: JSON lines with the service, pod and key fields; secrets redacted either way."""

from __future__ import annotations

import json
import logging

import pytest

from kitex_etcd_operator.logs import JsonFormatter, RedactSecrets


def record(msg: str, *args: object, **extra: str) -> logging.LogRecord:
    rec = logging.LogRecord("kitex_etcd_operator.test", logging.INFO, __file__, 1, msg, args,
                            None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_json_line_carries_service_pod_and_key() -> None:
    rec = record("put %s", "kitex/registry-etcd/echo/10.0.0.1:8888", service="echo",
                 pod="echo-1", key="kitex/registry-etcd/echo/10.0.0.1:8888")
    data = json.loads(JsonFormatter().format(rec))
    assert data["message"] == "put kitex/registry-etcd/echo/10.0.0.1:8888"
    assert (data["service"], data["pod"], data["level"]) == ("echo", "echo-1", "info")
    assert data["key"].endswith("10.0.0.1:8888")


@pytest.mark.parametrize("line", [
    "connecting with password=hunter2 to etcd",
    'body {"password": "hunter2"}',
    "Authorization: Bearer hunter2",
    "token=hunter2",
])
def test_secrets_are_redacted(line: str) -> None:
    rec = record(line)
    assert RedactSecrets().filter(rec)
    assert "hunter2" not in rec.getMessage()
