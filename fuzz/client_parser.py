"""Fuzz the wire parser as a client connection uses it (see fuzz/parser_harness.py)."""

from fuzz import parser_harness
from scserver.protocol.parser import CLIENT


def TestOneInput(data: bytes) -> None:
    parser_harness.run(CLIENT, data)
