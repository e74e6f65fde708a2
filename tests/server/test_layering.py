"""The server's layering rules, checked on the source (design review, section 3).

* Only ``cli.py`` (and ``__main__``) import ``scserver.server``: the composition root sits on
  top; everything else gets the narrow services of ``scserver.core.ports``. Every import
  counts, including ones inside functions and ``if TYPE_CHECKING:`` blocks, which is where the
  old import circle hid.
* The connection modules read only what their port declares from the server, and the real
  ``Server`` provides every port, so the Protocols stay both true and narrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from scserver.core import ports
from scserver.options import Options
from scserver.server import Server

PACKAGE = Path(ports.__file__).resolve().parents[1]
ALLOWED = {"scserver.cli", "scserver.__main__"}

#: The port each connection module's ``server`` is typed with (a package: all its modules).
PORT_OF = {
    "connection": ports.ServerContext,
    "client": ports.ClientServices,
    "link": ports.LinkServices,
    "route": ports.LinkServices,
    "gateway": ports.LinkServices,
}


def sources(module: str) -> list[Path]:
    package = PACKAGE / module
    return sorted(package.rglob("*.py")) if package.is_dir() else [PACKAGE / f"{module}.py"]


def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path) -> set[str]:
    """Every module ``path`` imports anywhere in its body, relative imports resolved; for
    ``from X import a`` both ``X`` and ``X.a`` (``a`` may be a submodule)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def server_importers(root: Path) -> list[str]:
    """Modules under ``root`` other than the allowed ones that import ``<root>.server``."""
    target = f"{root.name}.server"
    bad = []
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root)
        if name in ALLOWED or name == target:
            continue
        if target in imported_modules(path, root):
            bad.append(name)
    return bad


def test_only_cli_imports_the_server_module() -> None:
    assert server_importers(PACKAGE) == []


@pytest.mark.parametrize(
    "source",
    [
        "from scserver.server import Server\n",
        "import scserver.server\n",
        "from scserver import server\n",
        "from . import server\n",
        "from .server import _local_ips\n",
        "def f():\n    from scserver.server import Server\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from scserver.server import X\n",
    ],
)
def test_the_check_finds_every_form_of_import(tmp_path: Path, source: str) -> None:
    root = tmp_path / "scserver"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "server.py").write_text("")
    (root / "cli.py").write_text("from scserver.server import Server\n")
    (root / "offender.py").write_text(source)
    assert server_importers(root) == ["scserver.offender"]


def test_the_check_resolves_relative_imports_in_subpackages(tmp_path: Path) -> None:
    root = tmp_path / "scserver"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "ok.py").write_text("from . import server\nfrom .server import x\n")
    (root / "sub" / "bad.py").write_text("from ..server import Server\n")
    assert server_importers(root) == ["scserver.sub.bad"]


def port_members(port: type) -> set[str]:
    names: set[str] = set()
    for cls in port.__mro__:
        if cls.__module__ != ports.__name__:
            continue
        names.update(cls.__dict__.get("__annotations__", {}))
        names.update(n for n in cls.__dict__ if not n.startswith("_"))
    return names


def _is_server(node: ast.expr) -> bool:
    """``server`` or ``self.server``."""
    if isinstance(node, ast.Name):
        return node.id == "server"
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "server"
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def server_attributes_read(path: Path) -> set[str]:
    """Attribute names read on ``self.server`` or on a local named ``server``."""
    tree = ast.parse(path.read_text(), str(path))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and _is_server(node.value)
    }


@pytest.mark.parametrize("module", sorted(PORT_OF))
def test_connection_modules_use_only_their_port(module: str) -> None:
    used = set().union(*(server_attributes_read(path) for path in sources(module)))
    assert used, f"{module}.py reads nothing from the server: is the scan still right?"
    extra = used - port_members(PORT_OF[module])
    assert not extra, f"{module}.py uses server.{sorted(extra)} not declared in its port"


async def test_the_server_provides_every_port() -> None:
    server = Server(Options(port=0))
    for port in (
        ports.ServerContext,
        ports.InterestListener,
        ports.AccountDirectory,
        ports.ClientServices,
        ports.LinkServices,
    ):
        missing = sorted(n for n in port_members(port) if not hasattr(server, n))
        assert not missing, f"Server lacks {port.__name__} members {missing}"
        assert isinstance(server, port)
