"""Fuzz the wire parser as a route connection uses it (see fuzz/parser_harness.py)."""

from fuzz import parser_harness
from scserver.protocol.parser import ROUTE


def TestOneInput(data: bytes) -> None:
    parser_harness.run(ROUTE, data)
