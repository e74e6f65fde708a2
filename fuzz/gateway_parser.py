"""Fuzz the wire parser as a gateway connection uses it (see fuzz/parser_harness.py)."""

from fuzz import parser_harness
from scserver.protocol.parser import GATEWAY


def TestOneInput(data: bytes) -> None:
    parser_harness.run(GATEWAY, data)
