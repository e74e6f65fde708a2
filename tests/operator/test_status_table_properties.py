"""`scoperator status` renders any JSON the API server could hand it, never a traceback.

The renderer reads raw objects (not the models) so that a status written by another operator
version still prints; a field of an unexpected type must become a gap or `?` in the table.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scoperator.status_table import Snapshot, render

# The field names the renderer reads, so that odd values land where they are looked for.
FIELDS = st.sampled_from(
    ["status", "conditions", "type", "reason", "message", "members", "name", "connectedTo",
     "missing", "servers", "gateways", "cluster", "outbound", "inbound", "replicas",
     "readyServers", "clustersReady", "connectivity", "containers", "image", "spec", "metadata",
     "labels", "count", "lastTimestamp", "lastTransitionTime", "involvedObject", "kind",
     "containerStatuses", "restartCount", "external", "ready", "endpoints", "client", "phase",
     "generation", "observedGeneration", "configCurrent", "healthy", "series", "version"]
)  # fmt: skip
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 10**20)
    | st.floats(allow_nan=False)
    | st.text(max_size=6)
    | st.sampled_from(
        [
            "True",
            "False",
            "Unknown",
            "Ready",
            "scserver",
            "2026-11-26T11:00:00Z",
            "2026-11-26T11:00:00",
            "supercluster.dev/cluster",
        ]
    ),  # fmt: skip
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(FIELDS, inner, max_size=4),
    max_leaves=16,
)
OBJECTS = st.dictionaries(FIELDS, VALUES, max_size=5)
NOW = dt.datetime(2026, 11, 26, 12, 0, 0, tzinfo=dt.UTC)


@settings(max_examples=200, deadline=None)
@given(
    sc=OBJECTS,
    clusters=st.lists(OBJECTS, max_size=3),
    pods=st.lists(OBJECTS, max_size=3),
    events=st.lists(OBJECTS, max_size=3),
)
def test_render_takes_any_json(sc: dict, clusters: list, pods: list, events: list) -> None:
    text = render(Snapshot(sc, clusters, pods, events), NOW)
    assert text.startswith("SuperCluster ") and text.endswith("\n")


def test_fields_of_another_shape_show_as_gaps() -> None:
    """A members list written as an object, counts as strings, a condition list as a string."""
    sc: dict[str, Any] = {
        "kind": "SuperCluster",
        "metadata": {"name": "demo", "namespace": "ns"},
        "status": {"members": {"east": {}}, "conditions": "Ready", "connectivity": ["east"]},
    }
    cluster = {
        "kind": "Cluster",
        "metadata": {"name": "east"},
        "status": {"replicas": "three", "servers": [{"name": ["east-0"]}], "gateways": "x"},
    }
    text = render(Snapshot(sc, [cluster], [], [{"count": "many", "message": 7}]), NOW)
    assert "0/1 clusters ready, 0/0 servers ready" in text  # "three" replicas count as 0
    assert "  east     ?      0/three  -" in text
    assert "Servers: none yet" in text  # a server without a string name is not listed
    assert "Conditions: none reported yet" in text
    assert text.rstrip().endswith("7")  # the event, its count "many" read as 1
