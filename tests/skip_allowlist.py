"""The only skips and xfails a CI run may have.

Under CI (:func:`tests.tools.in_ci`) the rule in ``tests/skip_rule.py`` turns every other skip or
xfail into a failure. Each entry names:

* ``reason`` — why the tests it covers cannot run on some machines;
* ``tests`` — the node ids it covers (``fnmatch`` patterns, relative to the repository root);
* ``probe`` — a function that proves the reason on *this* machine: it returns the evidence (a
  short sentence) when the reason holds here, ``None`` when it does not. A test skips through
  :func:`tests.skip_rule.allowed_skip` only when the probe returns evidence; when it returns
  ``None`` the test runs (so a machine that can run the tier does run it).

Keep this list short: a missing tool is not a reason (``make test`` installs every tool), so
only things a test run cannot provide for itself belong here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Allowance:
    """One allowed skip (or xfail): its reason, the tests it covers and the probe proving it."""

    key: str
    reason: str
    tests: tuple[str, ...]
    probe: Callable[[], str | None]
    xfail: bool = False


#: key -> allowance; keys are what tests pass to ``allowed_skip``. Empty today: every tier runs
#: on this machine. (The kind e2e tier, the last entry, now falls back to a host node where kind
#: cannot start a privileged container: tests/e2e/providers.py.) An entry looks like::
#:
#:     Allowance(
#:         key="kind-e2e",
#:         reason="kind cannot create a Kubernetes cluster on this machine",
#:         tests=("tests/e2e/*",),
#:         probe=kind_cluster_unavailable,  # evidence string, or None when it can
#:     )
ALLOWED: dict[str, Allowance] = {}
