"""Credentials: from user Secrets to a config include that never lands in a ConfigMap.

Why an include and not `password: $ENV_VAR`: nats-server parses the *value* of an environment
variable as config syntax, so a password like `1234`, `true` or `has space` either changes type
or breaks the config (checked with nats-server 2.15). We therefore render a small include file
that defines one variable per user as a quoted string:

    SC_PASSWORD_SYS: "s3cret"

It lives in a Secret (`<cluster>-auth`) mounted next to the config through one projected
volume, so kubelet swaps both files atomically and the server's reload sees a consistent pair.
A change of accounts or passwords changes files only, never the pod template: no restart.

nats-server rejects variables that are defined but unused ("unknown field"), so the include
defines exactly the variables the main config references.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from scoperator.models import SecretKeyRef, SuperClusterSpec, password_var

# secret name -> key -> decoded value (what `secrets_from_objects` returns)
SecretValues = Mapping[str, Mapping[str, str]]


class MissingSecretError(LookupError):
    """Referenced Secret keys are absent; the message lists all of them at once."""

    def __init__(self, missing: list[SecretKeyRef]) -> None:
        self.missing = missing
        refs = ", ".join(f"{r.name}/{r.key}" for r in missing)
        super().__init__(f"missing Secret keys: {refs}")


def quote(value: str) -> str:
    """Quote a string for the nats-server config language (double quotes, backslash escapes).

    Inside double quotes nats-server expands no variables and accepts \\" \\\\ \\n \\t \\r; other
    control characters are rejected rather than encoded, since no password needs them.
    """
    out = []
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise ValueError("control characters are not supported in config strings")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def secret_refs(spec: SuperClusterSpec) -> list[SecretKeyRef]:
    """Every Secret key the supercluster's accounts reference, in account/user order."""
    return [u.password_secret_ref for a in spec.accounts for u in a.users]


def needs_auth(spec: SuperClusterSpec) -> bool:
    """Whether any user exists, i.e. whether the credentials include is rendered at all."""
    return bool(secret_refs(spec))


def require_keys(refs: list[SecretKeyRef], secrets: SecretValues | None) -> None:
    """Raise MissingSecretError naming every ref of `refs` absent from `secrets`."""
    values = secrets or {}
    missing = [r for r in refs if r.key not in values.get(r.name, {})]
    if missing:
        # Each missing key once, in the order asked.
        unique = list({(r.name, r.key): r for r in missing}.values())
        raise MissingSecretError(unique)


def password_lines(spec: SuperClusterSpec, secrets: SecretValues | None) -> list[str]:
    """One quoted variable definition per user. Raises MissingSecretError."""
    values = secrets or {}
    require_keys(secret_refs(spec), values)
    lines = []
    for account in spec.accounts:
        for user in account.users:
            ref = user.password_secret_ref
            lines.append(f"{password_var(user.user)}: {quote(values[ref.name][ref.key])}")
    return lines


def render_auth_include(spec: SuperClusterSpec, secrets: SecretValues | None) -> str:
    """The user passwords part of the include alone. Raises MissingSecretError."""
    lines = ["# Rendered by scoperator: one variable per user password. Do not edit."]
    return "\n".join(lines + password_lines(spec, secrets)) + "\n"


def secrets_from_objects(objects: list[dict]) -> dict[str, dict[str, str]]:
    """Decode Secret manifests (data and stringData) into `SecretValues` for rendering."""
    result: dict[str, dict[str, str]] = {}
    for obj in objects:
        if obj.get("kind") != "Secret" or obj.get("apiVersion", "v1") != "v1":
            continue
        name = obj.get("metadata", {}).get("name")
        if not name:
            continue
        values = result.setdefault(name, {})
        for key, b64 in (obj.get("data") or {}).items():
            values[key] = base64.b64decode(b64).decode()
        for key, text in (obj.get("stringData") or {}).items():
            values[key] = str(text)
    return result


def placeholder_secrets(
    spec: SuperClusterSpec, known: SecretValues, extra: list[SecretKeyRef] | None = None
) -> dict[str, dict[str, str]]:
    """`known` completed with visible placeholders, for previews (`scoperator render`) only.

    `extra` are further refs to fill (link credentials, certificates' CA bundles).
    """
    result = {name: dict(keys) for name, keys in known.items()}
    for ref in [*secret_refs(spec), *(extra or [])]:
        result.setdefault(ref.name, {}).setdefault(ref.key, f"<from secret {ref.name}/{ref.key}>")
    return result
