"""Logging: text for people, JSON for collectors, and never a secret in either.

The redacting filter is a second line of defence: no code logs credentials
on purpose, but an exception text quoting a URL with a password, or a
Secret's data in a kopf debug line, must still not reach the log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

_SECRETS = re.compile(
    r"(?i)(password|passwd|token|authorization)(\"?\s*[:=]\s*\"?)"
    r"((?:bearer\s+|basic\s+)?[^\s\",}]+)")
_EXTRA = ("service", "pod", "key", "binding", "namespace")


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRETS.sub(r"\1\2***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the service, pod and key where the code gave them."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _EXTRA:
            if hasattr(record, name):
                data[name] = getattr(record, name)
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup_logging(fmt: str = "text", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactSecrets())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kopf.objects logs every handler call at INFO: 10,000 pods would drown the log.
    for noisy in ("kubernetes.client.rest", "urllib3", "aiohttp.access", "grpc",
                  "kopf.objects"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
