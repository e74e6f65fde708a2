"""``/gatewayz``: the gateway manager's links and, per account, their interest state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scserver import link_tls

if TYPE_CHECKING:
    from scserver.gateway.conn import GatewayConnection
    from scserver.gateway.manager import GatewayManager


def gatewayz(
    manager: GatewayManager, gw_name: str, accs: bool, acc_name: str, subs: bool
) -> dict[str, Any]:
    """nats-server's Gatewayz: our own URL, outbound links by remote name, inbound ones grouped
    by remote, each with its connection info and (``accs``) per-account interest state."""
    from scserver.monitor import conn_info  # monitor imports the connection modules

    url = manager.own_url()
    host, _, port = url.rpartition(":")
    out: dict[str, Any] = {"name": manager.name, "host": host, "port": int(port)}
    outbound: dict[str, Any] = {}
    for name, c in sorted(manager.outbound.items()):
        if c.closed or (gw_name and name != gw_name):
            continue
        remote = manager.remotes.get(name)
        entry: dict[str, Any] = {
            "configured": bool(remote and remote.configured),
            "connection": _conn(conn_info(manager.server, c), c),
        }
        if accs:
            entry["accounts"] = _out_accounts(manager, c, acc_name, subs)
        outbound[name] = entry
    inbound: dict[str, list[dict[str, Any]]] = {}
    for c in manager.inbound.values():
        if c.closed or not c.registered or (gw_name and c.gw_name != gw_name):
            continue
        remote = manager.remotes.get(c.gw_name)
        entry = {
            "configured": bool(remote and remote.configured),
            "connection": _conn(conn_info(manager.server, c), c),
        }
        if accs:
            entry["accounts"] = _in_accounts(manager, c, acc_name)
        inbound.setdefault(c.gw_name, []).append(entry)
    out["outbound_gateways"] = outbound
    out["inbound_gateways"] = inbound
    return out


def _conn(info: dict[str, Any], c: GatewayConnection) -> dict[str, Any]:
    info["name"] = c.name
    info.pop("kind", None)
    info.pop("type", None)
    info.update(link_tls.monitor_fields(c))
    return info


def _out_accounts(
    manager: GatewayManager, c: GatewayConnection, acc_name: str, subs: bool
) -> list[dict]:
    items = []
    for acc, st in sorted(c.out_accounts.items()):
        name = acc.decode(errors="replace")
        if acc_name and name != acc_name:
            continue
        if st is None:
            continue
        item: dict[str, Any] = {
            "name": name,
            "interest_mode": st.mode,
            "no_interest_count": len(st.ni) if st.ni else 0,
            "interest_only_threshold": manager.threshold,
            "num_subs": len(st.subs),
            "num_queue_subs": st.qsubs,
        }
        if subs:
            item["subscriptions_list"] = sorted(
                (s.subject + (b" " + s.queue if s.queue else b"")).decode(errors="replace")
                for s in st.subs.values()
            )
        items.append(item)
    return items


def _in_accounts(manager: GatewayManager, c: GatewayConnection, acc_name: str) -> list[dict]:
    items = []
    for acc, ia in sorted(c.in_accounts.items()):
        name = acc.decode(errors="replace")
        if acc_name and name != acc_name:
            continue
        items.append(
            {
                "name": name,
                "interest_mode": ia.mode,
                "no_interest_count": len(ia.ni) if ia.ni else 0,
                "interest_only_threshold": manager.threshold,
            }
        )
    return items
