"""Per-user publish/subscribe permissions (allow/deny lists of subject patterns)."""

from __future__ import annotations

from typing import Any

from scserver.subjects import subject_matches, subjects_collide


def _patterns(value: Any) -> list[bytes] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value.encode()]
    return [str(v).encode() for v in value]


def _split(spec: Any) -> tuple[list[bytes] | None, list[bytes] | None]:
    """`publish: "foo.>"`, `publish: [..]` or `publish: {allow: [..], deny: [..]}`."""
    if spec is None:
        return None, None
    if isinstance(spec, dict):
        return _patterns(spec.get("allow")), _patterns(spec.get("deny"))
    return _patterns(spec), None


class Permissions:
    """Compiled permissions of one user; results are cached per subject."""

    __slots__ = ("pub_allow", "pub_deny", "sub_allow", "sub_deny", "_pub_cache")

    def __init__(self, spec: dict[str, Any]) -> None:
        self.pub_allow, self.pub_deny = _split(spec.get("publish"))
        self.sub_allow, self.sub_deny = _split(spec.get("subscribe"))
        self._pub_cache: dict[bytes, bool] = {}

    def can_publish(self, subject: bytes) -> bool:
        cached = self._pub_cache.get(subject)
        if cached is not None:
            return cached
        ok = True
        if self.pub_allow is not None:
            ok = any(subject_matches(p, subject) for p in self.pub_allow)
        if ok and self.pub_deny:
            ok = not any(subject_matches(p, subject) for p in self.pub_deny)
        if len(self._pub_cache) > 1024:
            self._pub_cache.clear()
        self._pub_cache[subject] = ok
        return ok

    def can_subscribe(self, subject: bytes, queue: bytes | None = None) -> bool:
        ok = True
        if self.sub_allow is not None:
            ok = any(p == subject or subject_matches(p, subject) for p in self.sub_allow)
        if ok and self.sub_deny:
            ok = not any(
                subjects_collide(p, subject) and (p == subject or subject_matches(p, subject))
                for p in self.sub_deny
            )
        return ok


def compile_permissions(spec: dict[str, Any] | None) -> Permissions | None:
    if not spec:
        return None
    return Permissions(spec)
