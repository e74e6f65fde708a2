"""Fixtures for the `$SYS` tests: the nats CLI with an isolated home, seed superclusters."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.system.sysutil import GO, NatsCli, Supercluster, plan, seed_spec  # noqa: E402
from tests.tools import natscli_binary, require_binary  # noqa: E402


@pytest.fixture(scope="session")
def natscli_path() -> Path:
    return Path(require_binary(natscli_binary(), "nats CLI not found (hack/install-natscli.sh)"))


@pytest.fixture
def cli(natscli_path: Path, tmp_path: Path) -> NatsCli:
    return NatsCli(natscli_path, tmp_path / "home")


def _cluster(spec: Mapping[str, Sequence[tuple[str, str]]], tmp: Path) -> Iterator[Supercluster]:
    sc = plan(spec, tmp)
    sc.start()
    try:
        yield sc
    finally:
        sc.stop()


@pytest.fixture(scope="module")
def sc_seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supercluster]:
    """The seed supercluster run by scserver (shared by a module's tests)."""
    yield from _cluster(seed_spec(), tmp_path_factory.mktemp("sc-seed"))


@pytest.fixture(scope="module")
def go_seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supercluster]:
    """The same shape run by nats-server, for comparison."""
    yield from _cluster(seed_spec(GO, GO), tmp_path_factory.mktemp("go-seed"))
