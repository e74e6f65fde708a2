"""The raw config escape hatch: `spec.config.merge` folded into the rendered server config.

Precedence: the rendered config < the SuperCluster's `spec.config.merge` < the Cluster's
`spec.config.merge` (the two fragments are deep-merged first, the Cluster winning).

How a fragment lands in the config text: the template renders blocks (the top level, cluster,
gateway, their tls and authorization blocks, the client tls block, accounts); each of them ends
with the fragment's keys for that block. A later key wins in the NATS config language, so
a fragment key overrides the rendered one, and a mapping whose block the operator renders is
merged into it (deep merge) instead of replacing it. Any other value (scalars, lists, blocks the
operator does not render such as websocket or jetstream) is written as is and replaces.
Strings are quoted; the chart's raw-token syntax writes a token unquoted, for sizes and
variables: `max_payload: "<< 2MB >>"` becomes `max_payload: 2MB`.

Before the config is applied the operator loads it the way `scserver -t` does (scserver's own
config parser and options loader, with the credentials include and placeholder certificates in
a scratch directory): a rejected config never reaches the servers, which keep the previous one,
and the Cluster gets `ConfigApplied=False` with reason `InvalidConfigMerge` naming the key.
Keys that would break the topology (server name, listen ports, cluster and gateway names) are
refused outright: set them through the spec (`spec.ports`, the Cluster's name).
"""

from __future__ import annotations

import copy
import datetime
import decimal
import functools
import math
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoperator.patches import MAX_DEPTH, deeper_than
from scoperator.secrets import quote

INVALID_CONFIG_MERGE = "InvalidConfigMerge"
BARE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
# The chart's raw-token syntax: "<< 2MB >>" is written as 2MB (a size), "<< $VAR >>" as $VAR.
RAW_TOKEN = re.compile(r"^<<\s*([A-Za-z0-9_.$-]+)\s*>>$")
# Keys the operator must own: changing them breaks routes, gateways, probes or Services.
PROTECTED: dict[tuple[str, ...], str] = {
    ("server_name",): "the server name is the pod name",
    ("listen",): "set spec.ports.client",
    ("port",): "set spec.ports.client",
    ("host",): "servers listen on every address of the pod",
    ("http",): "set spec.ports.monitor",
    ("https",): "set spec.ports.monitor",
    ("http_port",): "set spec.ports.monitor",
    ("https_port",): "set spec.ports.monitor",
    ("include",): "includes cannot be merged: write the options into the merge itself",
    ("cluster", "name"): "the cluster name is the Cluster's name",
    ("cluster", "listen"): "set spec.ports.cluster",
    ("cluster", "port"): "set spec.ports.cluster",
    ("gateway", "name"): "the gateway name is the Cluster's name",
    ("gateway", "listen"): "set spec.ports.gateway",
    ("gateway", "port"): "set spec.ports.gateway",
    ("cluster", "host"): "servers listen on every address of the pod",
    ("gateway", "host"): "servers listen on every address of the pod",
}
# Options whose value is a credential: never written literally into the ConfigMap.
CREDENTIALS = frozenset({"password", "pass", "token"})
BCRYPT = re.compile(r"^\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}$")
# The config language ignores the case of option names, and a few options have a second name:
# `PORT`, `net` or `monitor_port` must not get past PROTECTED (nor escape the deep merge).
ALIASES = {"net": "host", "monitor_port": "http_port"}


class ConfigMergeError(ValueError):
    """A merge the operator refuses; `key` is the dotted path of the offending key."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.reason = INVALID_CONFIG_MERGE
        super().__init__(f"spec.config.merge.{key}: {message}" if key else message)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into `base`: mappings recursively, anything else replaced."""
    result = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def effective_merge(sc_merge: dict[str, Any] | None, cl_merge: dict[str, Any] | None) -> dict:
    """The fragment one member renders: the SuperCluster's, with the Cluster's merged over it."""
    for kind, fragment in (("SuperCluster", sc_merge), ("Cluster", cl_merge)):
        if deeper_than(fragment):  # before the recursive merge and copies below
            raise ConfigMergeError(
                "", f"the {kind}'s spec.config.merge nests deeper than {MAX_DEPTH} levels"
            )
    merged = deep_merge(sc_merge or {}, cl_merge or {})
    check_protected(merged)
    return merged


def option(key: str) -> str:
    """The option a key names, as the server reads it (any case, either name)."""
    lowered = key.lower()
    return ALIASES.get(lowered, lowered)


def check_protected(fragment: dict[str, Any], path: tuple[str, ...] = ()) -> None:
    """Raise ConfigMergeError for a key the operator owns or a value it cannot write.

    Keys are compared as options (case and aliases folded) at the top level and in the blocks
    below it, except in `accounts`, whose keys are account names (case matters there)."""
    options = len(path) == 0 or (len(path) == 1 and option(path[0]) != "accounts")
    seen: dict[str, str] = {}
    for key, value in fragment.items():
        here = (*path, str(key))
        _check_text(str(key), here, conf_key)
        name = tuple(option(p) for p in here)
        if name in PROTECTED:
            raise ConfigMergeError(".".join(here), f"set by the operator ({PROTECTED[name]})")
        if options and name[-1] in seen:
            raise ConfigMergeError(
                ".".join(here),
                f"the same option as {seen[name[-1]]!r} (option names ignore case): keep one",
            )
        seen[name[-1]] = str(key)
        _check_value(value, here)
        if isinstance(value, dict) and len(here) == 1:
            check_protected(value, here)


def _check_value(value: Any, path: tuple[str, ...]) -> None:
    if value is None:
        raise ConfigMergeError(".".join(path), "null is not a config value (omit the key)")
    if isinstance(value, str):
        if option(path[-1]) in CREDENTIALS and not _stays_out_of_the_configmap(value):
            raise ConfigMergeError(
                ".".join(path),
                "a literal credential would be stored in the ConfigMap in clear text: keep it "
                "in a Secret and write '<< $VAR >>', with VAR in spec.pod.env from "
                "valueFrom.secretKeyRef (or use spec.accounts[].users[].passwordSecretRef)",
            )
        _check_text(value, path, quote)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(str(k), (*path, str(k)), conf_key)
            _check_value(v, (*path, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_value(v, (*path, str(i)))


def _stays_out_of_the_configmap(value: str) -> bool:
    """A credential value the rendered ConfigMap may hold: a variable the server resolves from
    its environment (`<< $VAR >>`), or a bcrypt hash, as nats-server accepts for passwords."""
    raw = RAW_TOKEN.match(value)
    return bool(raw and raw.group(1).startswith("$")) or BCRYPT.match(value) is not None


def _check_text(text: str, path: tuple[str, ...], write: Callable[[str], str]) -> None:
    """Refuse a key or string the config language cannot carry, here where the key's path is
    known, rather than as a ValueError in the middle of rendering."""
    try:
        write(text)
    except ValueError as exc:
        raise ConfigMergeError(".".join(path), f"{exc} ({text!r})") from None


# ------------------------------------------------------------------------------ rendering


def conf_key(key: str) -> str:
    """A key as the config language reads it back: a plain word bare, anything else between
    quotes. The lexer reads a quoted key literally (no escapes), so quote() would change a key
    holding a backslash; a key is refused only when it holds both kinds of quotes or control
    characters. Raises ValueError."""
    if BARE_KEY.match(key):
        return key
    quote(key)  # the same control characters as in strings are refused
    for mark in "\"'":
        if mark not in key:
            return f"{mark}{key}{mark}"
    raise ValueError("a key cannot hold both kinds of quotes")


def conf_value(value: Any, indent: int = 0) -> str:
    """A JSON-ish value in the NATS config language (strings always quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        # The config lexer reads 0.001 but not 1e-03, the form repr() picks for small and large
        # floats a resource may carry; positional digits say the same number.
        if not math.isfinite(value):
            raise ConfigMergeError("", f"unsupported number {value!r}")
        digits = format(decimal.Decimal(repr(value)), "f")
        return digits if "." in digits else digits + ".0"  # still a float when read back
    if isinstance(value, str):
        raw = RAW_TOKEN.match(value)
        return raw.group(1) if raw else quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(conf_value(v, indent) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        pad = " " * (indent + 2)
        body = "".join(
            f"{pad}{conf_key(k)}: {conf_value(v, indent + 2)}\n" for k, v in value.items()
        )
        return "{\n" + body + " " * indent + "}"
    raise ConfigMergeError("", f"unsupported value {value!r}")


@dataclass(frozen=True)
class MergePlan:
    """Which fragment keys go into which rendered block (see the module docstring)."""

    fragment: dict[str, Any]
    blocks: frozenset[tuple[str, ...]]

    def keys_at(self, path: tuple[str, ...]) -> dict[str, Any]:
        """Fragment keys written at the end of the block at `path` (descending into the
        rendered blocks below it)."""
        node: Any = self.fragment
        for part in path:  # block names are lower case; the fragment's keys may not be
            found = (
                [v for k, v in node.items() if option(k) == part] if isinstance(node, dict) else []
            )
            node = found[0] if found else None
        if not isinstance(node, dict):
            return {}
        return {
            k: v
            for k, v in node.items()
            if not ((*path, option(k)) in self.blocks and isinstance(v, dict))
        }

    def text(self, dotted: str, indent: int) -> str:
        """Lines for the block `dotted` ("" is the top level), each indented by `indent`."""
        path = tuple(p for p in dotted.split(".") if p)
        keys = self.keys_at(path)
        if not keys:
            return ""
        pad = " " * indent
        where = f"spec.config.merge.{dotted}" if dotted else "spec.config.merge"
        lines = [f"{pad}# From {where} (wins over the lines above):"]
        lines += [f"{pad}{conf_key(k)}: {conf_value(v, indent)}" for k, v in keys.items()]
        return "\n".join(lines) + "\n"


def rendered_blocks(*, tls: bool, client_tls: bool, accounts: bool) -> frozenset:
    """The blocks the template renders, hence the ones a fragment merges into."""
    blocks = {
        ("cluster",),
        ("gateway",),
        ("cluster", "authorization"),
        ("gateway", "authorization"),
    }
    if tls:
        blocks |= {("cluster", "tls"), ("gateway", "tls")}
    if client_tls:
        blocks.add(("tls",))
    if accounts:
        blocks.add(("accounts",))
    return frozenset(blocks)


# ----------------------------------------------------------------------------- validation


@functools.cache
def _placeholder_pair() -> tuple[str, str]:
    """A self-signed certificate standing in for the real ones while a config is checked."""
    from scoperator.certs import make_ca

    now = datetime.datetime.now(datetime.UTC)
    pair = make_ca("scoperator config check", now, datetime.timedelta(days=3650))
    return pair.cert_pem, pair.key_pem


def check_config(
    files: dict[str, str],
    pod_name: str,
    *,
    env: dict[str, str] | None = None,
    config_file: str = "scserver.conf",
) -> None:
    """Load the rendered files as `scserver -t` would; raise ConfigMergeError when rejected.

    `env` is the server container's environment as far as the operator knows it (`$VAR`
    references in a merge resolve against it; values from fieldRefs or Secrets are placeholders).

    `files` maps names (scserver.conf, auth.conf, ...) to text. The certificates come from
    Secrets the operator does not read here: placeholders stand in for them. Files named by a
    fragment (mounted from extra volumes) cannot be seen from the operator: "no such file"
    faults are left to the server.
    """
    from scoperator.naming import TLS_CA, TLS_CERT, TLS_DIR, TLS_KEY
    from scserver import options
    from scserver.conf.lexer import ConfigError
    from scserver.conf.parser import parse_string

    text = files[config_file]
    with tempfile.TemporaryDirectory(prefix="scoperator-check-") as tmp:
        root = Path(tmp)
        for name, content in files.items():
            (root / name).write_text(content)
        cert, key = _placeholder_pair()
        (root / TLS_DIR).mkdir()
        for name, content in ((TLS_CERT, cert), (TLS_KEY, key), (TLS_CA, cert)):
            (root / TLS_DIR / name).write_text(content)
        try:
            parsed = parse_string(
                text, str(root / config_file), str(root), env={**(env or {}), "POD_NAME": pod_name}
            )
            options.from_dict(parsed, source=config_file)
        except options.OptionsError as exc:
            faults = [e for e in exc.errors if "no such file" not in str(e.message)]
            if faults:
                raise _located(faults[0], text, len(faults), config_file) from None
        except ConfigError as exc:
            raise _located(exc, text, 1, config_file) from None


def _located(exc: Any, text: str, count: int, config_file: str) -> ConfigMergeError:
    """A ConfigMergeError naming the key on the line the server complained about.

    Only a line of the config itself is quoted: a fault in another file (the credentials
    include, rendered from Secrets) is named by file and line, never shown — it holds passwords,
    and the message becomes a condition anyone who reads the Cluster sees."""
    line_no = getattr(exc, "line", None) or 0
    more = f" (and {count - 1} more)" if count > 1 else ""
    source = Path(exc.file).name if getattr(exc, "file", None) else config_file
    if source != config_file:
        return ConfigMergeError(
            "",
            f"the server rejects the merged config{more}: {exc.message} ({source}, line {line_no})",
        )
    lines = text.splitlines()
    line = lines[line_no - 1].strip() if 0 < line_no <= len(lines) else ""
    match = re.match(r'^"?([^"\s:={]+)', line)
    key = match.group(1) if match else ""
    where = f" at line {line_no}: {line}" if line else ""
    return ConfigMergeError(
        "",
        f"the server rejects the merged config{more}: {exc.message}{where}"
        + (f" (key {key!r})" if key else ""),
    )
