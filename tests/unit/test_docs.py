"""The documentation stands on its own: every link resolves inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCES = [*DOCS, *sorted((ROOT / "operator").rglob("*.py")), *sorted(ROOT.glob("charts/*/*.md"))]
OUTSIDE = ("../shared", "CONTRACT.md", "PEERS.md")


def test_no_reference_to_files_outside_the_repository() -> None:
    for path in SOURCES:
        text = path.read_text()
        for needle in OUTSIDE:
            assert needle not in text, f"{path.relative_to(ROOT)} mentions {needle}"


def test_relative_links_resolve() -> None:
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            resolved = (path.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), f"{path.name}: {target} leaves the repository"
            assert resolved.exists(), f"{path.name}: {target} does not exist"


def test_wire_format_states_the_facts_the_code_uses() -> None:
    from kitex_etcd_operator import model, retry

    text = (ROOT / "docs" / "wire-format.md").read_text()
    for fact in (model.DEFAULT_PREFIX, model.HERTZ_PREFIX, f"{model.DEFAULT_LEASE_TTL} s",
                 "{prefix}/{serviceName}/{host:port}", "[fd00::7]:8888",
                 f"| `maxAttemptTimes` | {retry.DEFAULT_MAX_ATTEMPT_TIMES} |",
                 f"| `observeDelay` | {retry.RetryConfig().observe_delay:g} s |",
                 f"| `retryDelay` | {retry.RetryConfig().retry_delay:g} s |"):
        assert fact in text, fact
    sample = model.Instance.make("10.0.0.7", 8888, tags={"zone": "a", "env": "prod"})
    assert sample.encode().decode() in text
