"""`scoperator status`: the pure renderer against golden text, and the reader's filtering.

The snapshot is what the operator writes for a 3-member supercluster with an external
gateway where one member (north) has a pod not ready and a missing link: statuses built with
the operator's own `observe.supercluster_status`, pods as the API server returns them.

Regenerate the golden file with `UPDATE_GOLDEN=1 pytest tests/operator/test_status_table.py`.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from scoperator.cli import build_parser, main
from scoperator.observe import supercluster_status
from scoperator.status import condition
from scoperator.status_table import (
    NotFound,
    Snapshot,
    age,
    read_snapshot,
    render,
    run_status,
    table,
)

GOLDEN = Path(__file__).parent / "golden" / "status" / "status-table.txt"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
NOW = dt.datetime(2026, 11, 26, 12, 0, 0, tzinfo=dt.UTC)
NS = "demo"
API = "supercluster.dev/v1alpha1"


def ts(seconds_ago: int) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamped(conds: list[dict[str, Any]], seconds_ago: int) -> list[dict[str, Any]]:
    return [{**c, "lastTransitionTime": ts(seconds_ago)} for c in conds]


def server(name: str, ok: bool = True, out: int = 2, inb: int = 2, **kw: Any) -> dict[str, Any]:
    doc = {
        "name": name,
        "healthy": ok,
        "version": "2.10.29",
        "routes": 2 if name[:-2] != "north" else 0,
        "outboundGateways": out,
        "inboundGateways": inb,
        "configCurrent": True,
    }
    doc.update(kw)
    return doc


def cluster_obj(name: str, replicas: int, status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": NS, "generation": 1},
        "spec": {"superCluster": "demo", "replicas": replicas},
        "status": status,
    }


def pod(name: str, cluster: str, ready: bool, phase: str = "Running", restarts: int = 0) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {
                "supercluster.dev/cluster": cluster,
                "supercluster.dev/supercluster": "demo",
            },
        },
        "spec": {"containers": [{"name": "scserver", "image": "ghcr.io/example/scserver:0.9.1"}]},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "scserver", "restartCount": restarts}],
        },
    }


def event(kind: str, name: str, etype: str, reason: str, msg: str, ago: int, count: int = 1):
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{ago}", "namespace": NS},
        "involvedObject": {"apiVersion": API, "kind": kind, "name": name, "namespace": NS},
        "type": etype,
        "reason": reason,
        "message": msg,
        "lastTimestamp": ts(ago),
        "count": count,
    }


def ok_conditions() -> list[dict[str, Any]]:
    return [
        condition("Ready", True, "AllServersReady", "3/3 servers ready", 1),
        condition("GatewaysConnected", True, "AllGatewaysConnected", "", 1),
        condition("ConfigApplied", True, "Applied", "", 1),
        condition("ConfigReloaded", True, "AllServersReloaded", "", 1),
        condition("Degraded", False, "Healthy", "", 1),
    ]


def snapshot() -> Snapshot:
    east = {
        "observedGeneration": 1,
        "replicas": 3,
        "readyServers": 3,
        "connectedGateways": 2,
        "endpoints": {"client": "nats://east.demo.svc:4222"},
        "conditions": stamped(ok_conditions(), 3600),
        "servers": [server(f"east-{i}", out=3, inb=2 if i else 3) for i in range(3)],
        "gateways": [
            {"cluster": "edge", "outbound": 3, "inbound": 1, "connected": True},
            {"cluster": "north", "outbound": 3, "inbound": 1, "connected": True},
            {"cluster": "west", "outbound": 3, "inbound": 3, "connected": True},
        ],
    }
    west = {
        **east,
        "endpoints": {"client": "nats://west.demo.svc:4222"},
        "servers": [server(f"west-{i}", out=3, inb=2 if i else 3) for i in range(3)],
        "gateways": [
            {"cluster": "east", "outbound": 3, "inbound": 3, "connected": True},
            {"cluster": "north", "outbound": 3, "inbound": 0, "connected": True},
            {"cluster": "edge", "outbound": 3, "inbound": 1, "connected": True},
        ],
    }
    north_conds = [
        condition("Ready", False, "PodsNotReady", "0/1 servers ready: north-0 (CrashLoopBackOff)"),
        condition("GatewaysConnected", False, "GatewaysMissing", "no link to west", 1),
        condition("ConfigApplied", True, "Applied", "", 1),
        condition("ConfigReloaded", "Unknown", "ReloadUnknown", "north-0 not reachable", 1),
        condition("Degraded", True, "ServersUnreachable", "north-0: connection refused", 1),
    ]
    north = {
        "observedGeneration": 1,
        "replicas": 1,
        "readyServers": 0,
        "connectedGateways": 1,
        "conditions": stamped(north_conds, 300),
        "servers": [
            {"name": "north-0", "healthy": False, "lastError": "connection refused"},
        ],
        "gateways": [
            {"cluster": "east", "outbound": 1, "inbound": 3, "connected": True},
            {"cluster": "west", "outbound": 0, "inbound": 3, "connected": False},
            {"cluster": "edge", "outbound": 0, "inbound": 0, "connected": False},
        ],
    }
    members = {"east": east, "west": west, "north": north}
    sc_status = supercluster_status(
        members, {"east": 3, "west": 3, "north": 1}, externals=["edge"], generation=2
    )
    sc_status["observedGeneration"] = 2
    sc_status["conditions"] = stamped(sc_status["conditions"], 300)
    sc = {
        "apiVersion": API,
        "kind": "SuperCluster",
        "metadata": {"name": "demo", "namespace": NS, "generation": 2},
        "spec": {"externalGateways": [{"name": "edge", "urls": ["nats://edge.example:7222"]}]},
        "status": sc_status,
    }
    clusters = [
        cluster_obj("east", 3, east),
        cluster_obj("north", 1, north),
        cluster_obj("west", 3, west),
    ]
    pods = [pod(f"east-{i}", "east", True) for i in range(3)]
    pods += [pod(f"west-{i}", "west", True) for i in (2, 0, 1)]  # any order from the API
    pods += [pod("north-0", "north", False, restarts=4)]
    events = [
        event("Cluster", "north", "Warning", "GatewaysMissing", "no link to west", 280, 3),
        event("SuperCluster", "demo", "Normal", "AllClustersReady", "Ready is True", 4000),
        event("Cluster", "north", "Warning", "PodsNotReady", "0/1 servers ready", 290),
        event("SuperCluster", "demo", "Warning", "ClustersNotReady", "2/3 clusters ready", 295),
    ]
    return Snapshot(sc, clusters, pods, events)


def test_render_matches_golden() -> None:
    text = render(snapshot(), now=NOW)
    if UPDATE:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
    assert GOLDEN.exists(), f"missing golden file {GOLDEN}; run with UPDATE_GOLDEN=1"
    assert text == GOLDEN.read_text(), f"{GOLDEN} differs; run with UPDATE_GOLDEN=1 and review"


def test_render_states_what_matters() -> None:
    """Independent of the golden file's layout: the facts a user looks for are there."""
    lines = render(snapshot(), now=NOW).splitlines()
    header = lines[0]
    assert "Ready=False" in header and "2/3 clusters ready" in header and "6/7 servers" in header
    north0 = next(line for line in lines if " north-0 " in line)
    assert north0.split()[:6] == ["north", "north-0", "Running", "no", "4", "no"]
    assert north0.rstrip().endswith("connection refused")
    assert "0.9.1" in north0  # no version in the status yet: the pod image's tag
    section = lines[lines.index("Servers") + 2 :]
    assert [line.split()[1] for line in section[:3]] == ["east-0", "east-1", "east-2"]
    gateways = next(i for i, line in enumerate(lines) if line.startswith("Gateways"))
    matrix_row = next(line for line in lines[gateways:] if line.startswith("  north "))
    assert matrix_row.split()[1:] == ["ok", "1/3", "NO", "0/0", "-", "NO", "0/3"]
    events = lines[lines.index("Events (last 4)") :]
    assert events[-1].rstrip().endswith("no link to west (x3)")  # newest last, with its count
    assert events[2].split()[0] == "1h"  # oldest first, as kubectl get events


def test_render_without_status_or_members() -> None:
    sc = {"kind": "SuperCluster", "metadata": {"name": "new", "namespace": "x", "generation": 1}}
    text = render(Snapshot(sc), now=NOW)
    assert "Ready=Unknown" in text
    assert "Clusters: none has joined" in text
    assert "Servers: none yet" in text
    assert "Conditions: none reported yet" in text
    assert "Events: none" in text
    assert "Gateways" not in text  # no matrix for fewer than two clusters


def test_render_event_limit_and_garbage_times() -> None:
    snap = snapshot()
    snap.events.append(
        {
            "involvedObject": {"kind": "Cluster", "name": "east"},
            "reason": "Odd",
            "lastTimestamp": "garbage",
        }
    )
    text = render(snap, now=NOW, events=2)
    assert "Events (last 2)" in text
    assert age("garbage", NOW) == "?" and age(None, NOW) == "?"
    assert age(ts(59), NOW) == "59s" and age(ts(3 * 86400 + 5), NOW) == "3d"


def test_table_alignment() -> None:
    assert table(["A", "LONGER"], [["xx", 1], ["y", None]]) == [
        "  A   LONGER",
        "  xx  1",
        "  y",
    ]


class FakeClient:
    """The two verbs the reader uses, over a fixed set of objects (as KubeClient returns them)."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects
        self.closed = False
        self.selectors: list[str | None] = []

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        for o in self.objects:
            if o.get("kind") == kind and o["metadata"]["name"] == name:
                return dict(o)
        return None

    async def list(self, kind: str, namespace: str, selector: str | None = None) -> list[dict]:
        self.selectors.append(selector)
        return [o for o in self.objects if o.get("kind") == kind]

    async def close(self) -> None:
        self.closed = True


async def test_read_snapshot_keeps_only_this_supercluster() -> None:
    snap = snapshot()
    other = {
        "kind": "Cluster",
        "metadata": {"name": "elsewhere", "namespace": NS},
        "spec": {"superCluster": "other"},
    }
    stray = event("Cluster", "elsewhere", "Warning", "X", "not ours", 10)
    client = FakeClient([snap.supercluster, *snap.clusters, other, *snap.pods, *snap.events, stray])
    got = await read_snapshot(client, NS, "demo")
    assert [c["metadata"]["name"] for c in got.clusters] == ["east", "north", "west"]
    assert len(got.events) == 4
    assert "supercluster.dev/supercluster=demo" in client.selectors
    with pytest.raises(NotFound, match="'nope' not found in namespace 'demo'"):
        await read_snapshot(client, NS, "nope")


async def test_run_status_watch_rounds_and_closes_client() -> None:
    snap = snapshot()
    client = FakeClient([snap.supercluster, *snap.clusters])
    out = io.StringIO()
    rc = await run_status(
        NS, "demo", watch=True, interval=0.01, out=out, client_factory=lambda: client, rounds=2
    )
    assert rc == 0 and client.closed
    assert out.getvalue().count("\x1b[H\x1b[2J") == 2
    assert out.getvalue().count("SuperCluster demo in namespace demo") == 2


@pytest.mark.parametrize(
    ("error", "shown", "once"),
    [
        (
            ConnectionResetError("API server went away"),
            "API server went away",
            ConnectionResetError,
        ),
        # aiohttp's own errors are not OSErrors: they used to end --watch with a traceback.
        (aiohttp.ServerDisconnectedError(), "Server disconnected", OSError),
    ],
)
async def test_watch_shows_a_failed_read_and_goes_on(
    error: Exception, shown: str, once: type[Exception]
) -> None:
    snap = snapshot()

    class Flaky(FakeClient):
        calls = 0

        async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
            self.calls += 1
            if self.calls == 1:
                raise error
            return await super().get(kind, namespace, name)

    client = Flaky([snap.supercluster, *snap.clusters])
    out = io.StringIO()
    rc = await run_status(
        NS, "demo", watch=True, interval=0.01, out=out, client_factory=lambda: client, rounds=2
    )
    frames = out.getvalue().split("\x1b[H\x1b[2J")[1:]
    assert rc == 0 and len(frames) == 2
    assert f"error: {shown}" in frames[0]
    assert "SuperCluster demo in namespace demo" in frames[1]
    # Without --watch the error is the caller's to print (one line, exit 1): an OSError or
    # KubeError, which the CLI prints as such.
    with pytest.raises(once):
        await run_status(NS, "demo", out=io.StringIO(), client_factory=lambda: Flaky([]))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["status", "x", "--interval", "0"], "must be a positive number"),
        (["status", "x", "--interval", "soon"], "not a number of seconds"),
        (["status", "x", "--events", "-1"], "cannot be negative"),
        (["status"], "the following arguments are required: name"),
    ],
)
def test_status_arguments_refused_clearly(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_status_without_credentials_is_one_line(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    rc = main(["status", "demo", "-n", NS, "--kubeconfig", str(missing)])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("scoperator status: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_timestamps_without_an_offset_print_as_unknown_ages() -> None:
    """A timestamp with no offset (not from an API server, but the renderer reads raw JSON) is
    an unknown age, not a TypeError from subtracting it from an aware now (review fix)."""
    snap = snapshot()
    naive = event("SuperCluster", "demo", "Normal", "Naive", "no offset", 5)
    naive["lastTimestamp"] = "2026-11-26T11:00:00"
    snap.events.append(naive)
    text = render(snap, NOW)
    row = next(line for line in text.splitlines() if "Naive" in line)
    assert row.split()[0] == "?", row
