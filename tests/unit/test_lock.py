"""The image's lock file satisfies pyproject's dependencies, with hashes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, str]:
    text = path.read_text()
    found = {canonicalize_name(m.group(1)): m.group(2)
             for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", text, re.M)}
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text)
    for block in blocks:
        if "==" in block.split("\n")[0]:
            assert "--hash=sha256:" in block, f"{path.name}: no hash for {block.splitlines()[0]}"
    return found


def test_the_lock_satisfies_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = pins(ROOT / "requirements" / "image.lock")
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in requirements/image.lock: run make lock"
        assert req.specifier.contains(locked[name], prereleases=True), \
            f"{req.name}=={locked[name]} does not satisfy {spec}: run make lock"


def test_the_build_lock_has_the_build_backend() -> None:
    locked = pins(ROOT / "requirements" / "build.lock")
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    for spec in build:
        req = Requirement(spec)
        assert canonicalize_name(req.name) in locked, req.name
        assert req.specifier.contains(locked[canonicalize_name(req.name)])
