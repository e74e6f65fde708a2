"""Cross-field checks nats-server makes when it starts (ports, names, accounts, imports,
TLS URLs): run once, after the walk."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import imports as links
from .model import GLOBAL_ACCOUNT, SYSTEM_ACCOUNT


class _Checks:
    """Cross-field checks after the walk (a mixin of the builder)."""

    # -- cross-field checks (nats-server makes these when it starts) ---------------------------

    def validate(self, d: Mapping[str, Any]) -> None:
        o = self.opts
        g = o.gateway
        key_of = {k.lower(): k for k in d}
        if o.max_pending > 0 and o.max_payload > o.max_pending:
            self.error(
                self.where(d, key_of.get("max_payload", key_of.get("max_pending", ""))),
                f"max_payload ({o.max_payload}) cannot be higher than max_pending "
                f"({o.max_pending})",
            )
        if g is not None and (g.name or g.port):
            pos = self.where(d, key_of.get("gateway", ""))
            if not g.name:
                self.error(pos, "gateway has no name")
            elif not g.port:
                self.error(pos, f'gateway "{g.name}" has no port specified (select -1 for random)')
        if (
            g is not None
            and g.name
            and o.cluster is not None
            and o.cluster.name
            and o.cluster.name != g.name
        ):
            self.error(
                self.where(d, key_of.get("cluster", "")),
                f"cluster name {o.cluster.name!r} conflicts with gateway name {g.name!r}",
            )
        # A tls:// URL asks for TLS; without a tls {} block that applies to it, nats-server
        # would dial it in plaintext (it ignores the scheme). Refused instead (link_tls.py).
        if o.cluster is not None and o.cluster.tls is None:
            for u in o.cluster.routes:
                if str(u).lower().startswith("tls://"):
                    self.error(
                        self.where(d, key_of.get("cluster", "")),
                        f"cluster route {u!r} is a tls:// URL but cluster has no tls {{}} block",
                    )
        if g is not None and g.tls is None:
            for r in g.gateways:
                bad = [u for u in r.urls if str(u).lower().startswith("tls://")]
                if bad and r.tls is None and r.name != g.name:
                    self.error(
                        self.where(d, key_of.get("gateway", "")),
                        f"gateway {r.name!r} url {bad[0]!r} is a tls:// URL but neither the "
                        "entry nor gateway has a tls {} block",
                    )
        auth_block = d.get(key_of.get("authorization", ""))
        if o.tls is not None and not (
            isinstance(auth_block, Mapping) and any(k.lower() == "timeout" for k in auth_block)
        ):
            # nats-server's default auth timeout with TLS: the TLS timeout plus one second.
            o.auth_timeout = o.tls.timeout + 1.0
        if o.https_port and o.http_port:
            self.error(
                self.where(d, key_of.get("https_port", key_of.get("https", ""))),
                f"can't specify both HTTP ({o.http_port}) and HTTPs ({o.https_port}) ports",
            )
        if o.https_port and o.tls is None:
            self.error(
                self.where(d, key_of.get("https_port", key_of.get("https", ""))),
                "https_port requires a tls {} block with cert_file and key_file",
            )
        if o.no_auth_user is not None and o.find_user(o.no_auth_user) is None:
            self.error(
                self.where(d, key_of.get("no_auth_user", "")),
                f"no_auth_user: user {o.no_auth_user!r} is not configured",
            )
        sys_key = key_of.get("system_account", key_of.get("system"))
        if sys_key is not None and not o.no_system_account:
            name = o.system_account
            if name not in o.accounts and name != SYSTEM_ACCOUNT:
                self.error(
                    self.where(d, sys_key),
                    f"system_account: account {name!r} is not defined in accounts",
                )
        if o.cluster is not None and o.cluster.pinned_accounts:
            for name in o.cluster.pinned_accounts:
                if name not in o.accounts and name not in (GLOBAL_ACCOUNT, SYSTEM_ACCOUNT):
                    self.error(
                        self.where(d, key_of.get("cluster", "")),
                        f"cluster accounts: account {name!r} is not defined",
                    )
        self.check_imports()

    def check_imports(self) -> None:
        """Imports must name accounts that exist (nats-server rejects this at -t time)."""
        o = self.opts
        for acc in o.accounts.values():
            for entry in acc.imports:
                if not isinstance(entry, dict):
                    continue
                for kind in ("stream", "service"):
                    spec = entry.get(kind)
                    if isinstance(spec, dict):
                        other = spec.get("account")
                        if isinstance(other, str) and other not in o.accounts:
                            self.error(
                                self.import_pos.get(acc.name),
                                f"{other!r} account not defined for {kind} import "
                                f"(in account {acc.name!r})",
                            )
        for name, block, message in links.check_options(o):
            self.error(self.link_pos.get((name, block)), f"account {name!r}: {message}")
