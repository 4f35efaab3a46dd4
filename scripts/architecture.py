"""The layer diagram of docs/architecture.md, drawn from the real imports.

The layers are the import-linter contract in pyproject.toml (the one `make
lint` enforces), drawn top to bottom; grimp lists the package's modules, each
of which must sit in a layer and have a row in the doc's module table. The
diagram sits between two markers in docs/architecture.md:

    python scripts/architecture.py          # rewrite it (make architecture)
    python scripts/architecture.py --check  # exit 1 if it is out of date (a unit test)

A module missing from the doc's module table, or a table row naming a module
that no longer exists, fails the check as well: the doc drifted from the code
once, unnoticed, and this is what keeps it honest.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
PACKAGE = "kitex_etcd_operator"
BEGIN, END = "<!-- BEGIN GENERATED: layers -->", "<!-- END GENERATED: layers -->"


def layers() -> list[list[str]]:
    """The layers contract, top first, each a list of its modules."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for contract in config["tool"]["importlinter"]["contracts"]:
        if contract["type"] == "layers":
            return [[m.strip() for m in re.split(r"[|:]", layer)] for layer in contract["layers"]]
    raise SystemExit("pyproject.toml has no layers contract")


def top_modules() -> set[str]:
    """The package's modules and subpackages, one level down (``kube``, not ``kube.spec``)."""
    graph = grimp.build_graph(PACKAGE)
    return {m.split(".")[1] for m in graph.modules if m.count(".") >= 1} - {"__main__"}


def diagram() -> str:
    """The layers top to bottom, each arrow meaning "imports only from below".

    Import counts would make the picture change with every refactor; which
    imports exist is what import-linter checks, the picture shows the stack.
    """
    stack = layers()
    lines = ["```mermaid", "flowchart TB"]
    for i, layer in enumerate(stack):
        lines.append(f'    L{i}["{" · ".join(layer)}"]')
    for i in range(len(stack) - 1):
        lines.append(f"    L{i} --> L{i + 1}")
    lines.append("```")
    return "\n".join(lines)


def table_modules(text: str) -> set[str]:
    """Modules named in the first column of the doc's module tables (`kube/`, `plan.py`)."""
    names = set()
    for row in re.findall(r"^\| `([a-z_]+)(?:\.py|/)` \|", text, flags=re.M):
        names.add(row)
    return names


def problems(text: str) -> list[str]:
    found = []
    if BEGIN not in text or END not in text:
        return [f"docs/architecture.md lacks the markers {BEGIN} ... {END}"]
    current = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    if current != diagram():
        found.append("the layer diagram is out of date: run `make architecture`")
    modules, listed = top_modules(), table_modules(text)
    for missing in sorted(modules - listed):
        found.append(f"module {missing} is not in the module table")
    for gone in sorted(listed - modules):
        found.append(f"the module table names {gone}, which does not exist")
    unlayered = modules - {m for layer in layers() for m in layer}
    for module in sorted(unlayered):
        found.append(f"module {module} is in no layer of pyproject's layers contract")
    return found


def main(argv: list[str]) -> int:
    text = DOC.read_text()
    if "--check" in argv:
        found = problems(text)
        for problem in found:
            print(problem, file=sys.stderr)
        return 1 if found else 0
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(f"{head}{BEGIN}\n{diagram()}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
