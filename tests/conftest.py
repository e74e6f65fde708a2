"""Project-wide pytest setup.

* ``tests.kube.fixtures``: the real Kubernetes control plane fixtures (``kube``, ``namespace``)
  for every tier that needs them (operator, delivery).
* ``tests.skip_rule``: under CI a skip or xfail not allow-listed in ``tests/skip_allowlist.py``
  fails the run.
* ``pytester``: for the tests of that rule (``tests/test_skip_rule.py``).
"""

pytest_plugins = ["tests.kube.fixtures", "tests.skip_rule", "pytester"]
