"""The layer diagram of docs/architecture.md, drawn from the real imports.

The layers are the import-linter contract in pyproject.toml (the one `make
lint` enforces); the arrows are the imports grimp finds between them, each
labelled with how many module-to-module imports it stands for. The diagram
sits between two markers in docs/architecture.md:

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
from collections import Counter
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
    graph = grimp.build_graph(PACKAGE)
    stack = layers()
    layer_of = {m: i for i, layer in enumerate(stack) for m in layer}
    edges: Counter[tuple[int, int]] = Counter()
    for importer in graph.modules:
        parts = importer.split(".")
        if len(parts) < 2 or parts[1] not in layer_of:
            continue
        for imported in graph.find_modules_directly_imported_by(importer):
            ip = imported.split(".")
            if ip[0] != PACKAGE or len(ip) < 2 or ip[1] not in layer_of:
                continue
            a, b = layer_of[parts[1]], layer_of[ip[1]]
            if a != b:
                edges[(a, b)] += 1
    # One arrow per layer to the next, labelled with the imports the layer makes of
    # all the layers below it (the full pair-by-pair graph is unreadable).
    lines = ["```mermaid", "flowchart TB"]
    for i, layer in enumerate(stack):
        lines.append(f'    L{i}["{" · ".join(layer)}"]')
    for i in range(len(stack) - 1):
        down = sum(count for (a, _), count in edges.items() if a == i)
        lines.append(f'    L{i} -->|"{down} imports below"| L{i + 1}')
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
