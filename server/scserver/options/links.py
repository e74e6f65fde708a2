"""The ``cluster {}`` and ``gateway {}`` blocks of the conf walk."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..conf import ConfList, Pos
from ..refused import (
    REFUSED_CLUSTER,
    refusal,
)
from .model import ClusterOpts, GatewayOpts, RemoteGateway
from .tls import TLSConfig, parse_tls_block
from .values import (
    _UNSUPPORTED_CLUSTER,
    _UNSUPPORTED_GATEWAY,
    COMPRESSION_MODES,
    _type_name,
    _url_problem,
)


class _LinkBlocks:
    """The ``cluster {}`` and ``gateway {}`` blocks (a mixin of the builder: reporting and
    typed getters come from ``build._Builder``)."""

    # -- cluster and gateway -------------------------------------------------------------------

    def route_auth(self, d: Mapping[str, Any], k: str, what: str) -> tuple[Any, Any, Any] | None:
        """Cluster/gateway ``authorization``: a single user only. (user, password, timeout)."""
        auth = self.get(d, k, "map", f"{what} authorization")
        if auth is None:
            return None
        user = password = timeout = None
        for ak in auth:
            lak = ak.lower()
            if lak in ("user", "username"):
                user = self.get(auth, ak, "str", ak)
            elif lak in ("pass", "password"):
                password = self.get(auth, ak, "str", ak)
            elif lak == "timeout":
                timeout = self.auth_timeout(auth, ak)
            elif lak == "users":
                self.error(self.where(d, k), f"{what} authorization does not allow multiple users")
                return None
            elif lak == "token":
                self.error(self.where(d, k), f"{what} authorization does not support tokens")
                return None
            elif lak in ("auth_callout", "auth_hook"):
                self.error(self.where(d, k), f"{what} authorization does not support callouts")
                return None
            elif lak in ("permissions", "default_permissions", "default_permission"):
                self.warn(self.where(auth, ak), f"{what} permissions are not supported; ignored")
            else:
                self.unknown(auth, ak, f" in {what.lower()} authorization")
        return user, password, timeout

    def url_list(self, arr: list[Any], what: str, pos: Pos | None = None) -> list[str]:
        """Check URLs; duplicates are dropped with a warning, as nats-server does.

        ``pos`` locates elements of a plain list (a single ``url`` wrapped in a list).
        """
        out: list[str] = []
        for i, url in enumerate(arr):
            pos = self.where(arr, i) if isinstance(arr, ConfList) else pos
            problem = _url_problem(url)
            if problem:
                self.error(pos, f"{what} url: {problem}")
                continue
            url = url.strip()
            if url in out:
                self.warn(pos, f"duplicate {what} entry {url!r} ignored")
                continue
            out.append(url)
        return out

    def cluster(self, d: Mapping[str, Any], k: str) -> None:
        cm = self.get(d, k, "map", "cluster")
        if cm is None:
            return
        c = ClusterOpts()
        self.opts.cluster = c
        for ck in cm:
            lck = ck.lower()
            if lck == "name":
                self.set_if(c, "name", self.name_without_spaces(cm, ck, "cluster name"))
            elif lck == "listen":
                hp = self.listen(cm, ck, "cluster listen")
                if hp is not None:
                    host, c.port = hp
                    if host is not None:
                        c.host = host
            elif lck == "port":
                self.set_if(c, "port", self.port(cm, ck, "cluster port"))
            elif lck in ("host", "net"):
                self.set_if(c, "host", self.get(cm, ck, "str", ck))
            elif lck == "authorization":
                auth = self.route_auth(cm, ck, "Cluster")
                if auth is not None:
                    c.username, c.password, timeout = auth
                    if timeout is not None:
                        c.auth_timeout = timeout
            elif lck == "routes":
                arr = self.get(cm, ck, "list", "routes")
                if arr is not None:
                    c.routes = self.url_list(arr, "route")
            elif lck in ("cluster_advertise", "advertise"):
                self.set_if(c, "advertise", self.get(cm, ck, "str", ck))
            elif lck == "no_advertise":
                self.set_if(c, "no_advertise", self.get(cm, ck, "bool", ck))
            elif lck == "connect_retries":
                self.set_if(c, "connect_retries", self.get(cm, ck, "int", ck))
            elif lck == "pool_size":
                self.set_if(c, "pool_size", self.get(cm, ck, "int", ck))
            elif lck == "accounts":
                arr = self.get(cm, ck, "list", "cluster accounts")
                if arr is not None:
                    names = [a for a in arr if isinstance(a, str)]
                    if len(names) != len(arr):
                        self.error(self.where(cm, ck), "cluster accounts must be strings")
                    c.pinned_accounts = names
            elif lck == "compression":
                self.compression(cm, ck, c)
            elif lck == "ping_interval":
                self.set_if(c, "ping_interval", self.duration(cm, ck, ck, strict=False))
            elif lck == "ping_max":
                self.set_if(c, "ping_max", self.get(cm, ck, "int", ck))
            elif lck == "tls":
                c.tls = parse_tls_block(self, cm, ck, context="cluster")
            elif lck in REFUSED_CLUSTER:
                self.error(self.where(cm, ck), refusal("cluster ", ck, REFUSED_CLUSTER[lck]))
            elif lck in _UNSUPPORTED_CLUSTER:
                self.warn(self.where(cm, ck), f'cluster option "{ck}" is not supported; ignored')
            else:
                self.unknown(cm, ck, " in cluster")

    def compression(self, d: Mapping[str, Any], k: str, c: ClusterOpts) -> None:
        v = d[k]
        pos = self.where(d, k)
        if isinstance(v, bool):
            c.compression = "s2_fast" if v else "off"
            return
        if isinstance(v, dict):
            mode = next((v[mk] for mk in v if mk.lower() == "mode"), None)
            for mk in v:
                if mk.lower() not in ("mode", "rtt_thresholds", "thresholds", "rtts", "rtt"):
                    self.unknown(v, mk, " in compression")
            v = mode if mode is not None else "accept"
        if not isinstance(v, str):
            self.error(pos, f'field "{k}" should be a boolean or a structure, got {_type_name(v)}')
            return
        mode = v.lower()
        aliases = {
            "on": "s2_fast",
            "enabled": "s2_fast",
            "true": "s2_fast",
            "disabled": "off",
            "false": "off",
            "uncompressed": "s2_uncompressed",
            "fast": "s2_fast",
            "better": "s2_better",
            "best": "s2_best",
            "auto": "s2_auto",
            "s2_auto": "s2_auto",
        }
        mode = aliases.get(mode, mode)
        if mode not in COMPRESSION_MODES:
            self.error(pos, f"unsupported compression mode {v!r}")
            return
        c.compression = mode

    def gateway(self, d: Mapping[str, Any], k: str) -> None:
        gm = self.get(d, k, "map", "gateway")
        if gm is None:
            return
        g = GatewayOpts()
        self.opts.gateway = g
        for gk in gm:
            lgk = gk.lower()
            if lgk == "name":
                self.set_if(g, "name", self.name_without_spaces(gm, gk, "gateway name"))
            elif lgk == "listen":
                hp = self.listen(gm, gk, "gateway listen")
                if hp is not None:
                    host, g.port = hp
                    if host is not None:
                        g.host = host
            elif lgk == "port":
                self.set_if(g, "port", self.port(gm, gk, "gateway port"))
            elif lgk in ("host", "net"):
                self.set_if(g, "host", self.get(gm, gk, "str", gk))
            elif lgk == "authorization":
                auth = self.route_auth(gm, gk, "Gateway")
                if auth is not None:
                    g.username, g.password, timeout = auth
                    if timeout is not None:
                        g.auth_timeout = timeout
            elif lgk == "advertise":
                self.set_if(g, "advertise", self.get(gm, gk, "str", gk))
            elif lgk == "connect_retries":
                self.set_if(g, "connect_retries", self.get(gm, gk, "int", gk))
            elif lgk in ("reject_unknown", "reject_unknown_cluster"):
                self.set_if(g, "reject_unknown_cluster", self.get(gm, gk, "bool", gk))
            elif lgk == "gateways":
                self.remote_gateways(gm, gk, g)
            elif lgk == "tls":
                g.tls = parse_tls_block(self, gm, gk, context="gateway")
            elif lgk == "interest_mode":
                # scserver extension: how our inbound links start (nats-server 2.9+ always
                # switches to interest-only at once; "optimistic" keeps the classic mode).
                mode = self.get(gm, gk, "str", gk)
                if mode is not None and mode not in ("interest_only", "optimistic"):
                    self.error(
                        self.where(gm, gk),
                        f'gateway interest_mode must be "interest_only" or "optimistic", '
                        f"got {mode!r}",
                    )
                elif mode is not None:
                    g.interest_mode = mode
            elif lgk == "interest_only_threshold":
                threshold = self.get(gm, gk, "int", gk)
                if threshold is not None and threshold < 1:
                    self.error(self.where(gm, gk), "gateway interest_only_threshold must be >= 1")
                elif threshold is not None:
                    g.interest_only_threshold = threshold
            elif lgk in _UNSUPPORTED_GATEWAY:
                self.warn(self.where(gm, gk), f'gateway option "{gk}" is not supported; ignored')
            else:
                self.unknown(gm, gk, " in gateway")

    def remote_gateways(self, gm: Mapping[str, Any], gk: str, g: GatewayOpts) -> None:
        arr = self.get(gm, gk, "list", "gateways")
        if arr is None:
            return
        seen: set[str] = set()
        for i, entry in enumerate(arr):
            pos = self.where(arr, i)
            if not isinstance(entry, dict):
                self.error(pos, f"expected gateway entry to be a map, got {_type_name(entry)}")
                continue
            name: str | None = None
            urls: list[str] = []
            tls: TLSConfig | None = None
            for ek in entry:
                lek = ek.lower()
                if lek == "name":
                    name = self.get(entry, ek, "str", "gateway entry name")
                elif lek == "url":
                    single = self.url_list([entry[ek]], "gateway", self.where(entry, ek))
                    urls.extend(u for u in single if u not in urls)
                elif lek == "urls":
                    items = self.get(entry, ek, "list", ek)
                    if items is not None:
                        urls.extend(u for u in self.url_list(items, "gateway") if u not in urls)
                elif lek == "tls":
                    tls = parse_tls_block(self, entry, ek, context="remote gateway")
                else:
                    self.unknown(entry, ek, " in gateway entry")
            if not name:
                self.error(pos, "gateway entry needs a name")
                continue
            if not urls:
                self.error(pos, f"gateway entry {name!r} needs at least one url")
                continue
            if name in seen:
                self.error(pos, f"duplicate gateway entry {name!r}")
                continue
            seen.add(name)
            g.gateways.append(RemoteGateway(name, urls, tls))
