"""The nats-server configuration language, parsed into positioned plain data.

``parse_file`` / ``parse_string`` return a ``ConfDict`` (a dict that remembers where each key was
written); every fault raises ``ConfigError`` located as ``file:line:col``. Sans-IO apart from
reading included files; imports nothing else of ours so any layer may use it.
"""

from .lexer import MAX_DEPTH, ConfigError, Pos, Tok, Token, tokenize
from .parser import ConfDict, ConfList, parse_file, parse_string, to_plain

__all__ = [
    "MAX_DEPTH",
    "ConfDict",
    "ConfList",
    "ConfigError",
    "Pos",
    "Tok",
    "Token",
    "parse_file",
    "parse_string",
    "to_plain",
    "tokenize",
]
