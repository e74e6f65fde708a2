"""Coverage-guided fuzz harnesses (atheris/libFuzzer) for scserver's input parsers.

Run one with ``python -m fuzz <harness> [libFuzzer flags]`` (``python -m fuzz --list`` names
them); ``make fuzz`` runs them all. Each harness module exposes ``TestOneInput(data)``, which
raises on a finding, so a crashing input can be replayed in a plain test
(tests/fuzz/test_regressions.py) without atheris' instrumentation.
"""

HARNESSES = (
    "client_parser",
    "route_parser",
    "gateway_parser",
    "connect_info",
    "config",
    "client_conn",
)
