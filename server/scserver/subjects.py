"""Subject and queue-name rules of the NATS protocol.

Subjects are ``bytes`` split into tokens on ``.``.  The rules follow nats-server
(``server/sublist.go``), because a subject that one server of a supercluster accepts and another
rejects would make interest diverge between them:

* no empty tokens, so a leading dot, a trailing dot or ``..`` is invalid;
* ``*`` (one token) and ``>`` (one or more tokens) are wildcards only when they are the *whole*
  token, so ``foo*`` and ``f>o`` are ordinary literal tokens;
* ``>`` must be the last token;
* whitespace (space, tab, CR, LF, FF) is not allowed anywhere.

This module is pure (no imports from the rest of the server) so that the protocol parser, the
sublist, permissions and gateways can all share it without import cycles.

The validators are single compiled-regex calls: measured here, one ``fullmatch`` is faster than
splitting into tokens and looping over them in Python for the usual 2-6 token subjects.
"""

from __future__ import annotations

import re

__all__ = [
    "FWC",
    "PWC",
    "SEP",
    "has_wildcard",
    "is_valid_literal_subject",
    "is_valid_queue",
    "is_valid_subject",
    "subject_matches",
    "subjects_collide",
    "tokens_match",
]

#: Token separator.
SEP = b"."
#: Partial wildcard: matches exactly one token.
PWC = b"*"
#: Full wildcard: matches one or more trailing tokens; must be the last token.
FWC = b">"

# A byte that may appear inside a token: anything but the separator and whitespace.
_CH = rb"[^. \t\r\n\f]"
# A token that is not exactly ">" (it may be "*", which is valid anywhere).
_TOK_NOT_FWC = rb"(?:[^. \t\r\n\f>]" + _CH + rb"*|>" + _CH + rb"+)"
# A token that is neither "*" nor ">" (a literal token).
_TOK_LITERAL = rb"(?:[^. \t\r\n\f>*]" + _CH + rb"*|[>*]" + _CH + rb"+)"

_VALID_SUBJECT = re.compile(rb"(?:" + _TOK_NOT_FWC + rb"\.)*" + _CH + rb"+").fullmatch
_VALID_LITERAL = re.compile(rb"(?:" + _TOK_LITERAL + rb"\.)*" + _TOK_LITERAL).fullmatch
# A wildcard token: "*" or ">" bounded by the start/end of the subject or by separators.
_WILDCARD_TOKEN = re.compile(rb"(?:^|(?<=\.))[*>](?:\.|\Z)").search
_WHITESPACE = re.compile(rb"[ \t\r\n\f]").search


def is_valid_subject(subject: bytes) -> bool:
    """Whether ``subject`` is a valid subject, wildcards allowed (the rule for SUB)."""
    return _VALID_SUBJECT(subject) is not None


def is_valid_literal_subject(subject: bytes) -> bool:
    """Whether ``subject`` is valid and has no wildcard tokens (the pedantic rule for PUB).

    Unlike nats-server's ``IsValidLiteralSubject`` this also rejects whitespace; on the wire a
    subject can never contain whitespace anyway, so the two agree on everything a client can send.
    """
    return _VALID_LITERAL(subject) is not None


def has_wildcard(subject: bytes) -> bool:
    """Whether ``subject`` contains a ``*`` or ``>`` wildcard *token*.

    Does not validate; ``foo*`` is literal.  Cheap pre-check: most subjects hold neither byte.
    """
    if b"*" not in subject and b">" not in subject:
        return False
    return _WILDCARD_TOKEN(subject) is not None


def is_valid_queue(queue: bytes) -> bool:
    """Whether ``queue`` can be used as a queue group name.

    nats-server does not validate queue names beyond what the wire format implies, so neither do
    we: non-empty and free of whitespace.
    """
    return bool(queue) and _WHITESPACE(queue) is None


def tokens_match(pattern: list[bytes], tokens: list[bytes]) -> bool:
    """Token-level :func:`subject_matches`, for callers that have already split both sides."""
    n = len(tokens)
    i = -1
    for i, pt in enumerate(pattern):
        if pt == FWC:
            # ">" needs at least one token left to eat.
            return i < n
        if i >= n:
            return False
        if pt != PWC and pt != tokens[i]:
            return False
    return i + 1 == n


def subject_matches(pattern: bytes, subject: bytes) -> bool:
    """Whether the literal ``subject`` is matched by ``pattern`` (which may have wildcards).

    ``foo.>`` does not match ``foo``: ``>`` needs at least one token.
    """
    if pattern == subject:
        return True
    if b"*" not in pattern and b">" not in pattern:
        return False
    return tokens_match(pattern.split(SEP), subject.split(SEP))


def subjects_collide(a: bytes, b: bytes) -> bool:
    """Whether some literal subject is matched by both patterns ``a`` and ``b``.

    Used for gateway interest: a subscription on one side matters to the other if the two can
    ever see the same message.  Both arguments are assumed valid.
    """
    if a == b:
        return True
    ta = a.split(SEP)
    tb = b.split(SEP)
    na = len(ta)
    nb = len(tb)
    for i in range(min(na, nb)):
        x = ta[i]
        y = tb[i]
        if x == FWC or y == FWC:
            # ">" eats the other side's remaining tokens (there is at least one: token i), and
            # any remaining tokens can be instantiated as literals.
            return True
        if x != y and x != PWC and y != PWC:
            return False
    return na == nb
