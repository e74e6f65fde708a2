"""Fixtures for the delivery tests (image, chart, scripts): a real control plane (tests/kube)."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.kube.fixtures import (  # noqa: E402
    kube,
    kube_client,
    namespace,
    pytest_collection_modifyitems,
)

__all__ = ["kube", "kube_client", "namespace", "pytest_collection_modifyitems"]
