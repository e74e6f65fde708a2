"""Property tests of the escape hatches with arbitrary JSON-like input from a custom resource.

The CRD schema types these fields only as "an object" or "a list of operations": whatever a user
writes inside them reaches the renderer. The reconcile must turn every such value into either
rendered objects or a refusal naming the problem (a condition), never an exception escaping the
handler, and must not mutate the objects it was given (the render cache shares them).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from tests.operator.helpers import fixed_credentials

from scoperator.apply import _render_members
from scoperator.config_merge import INVALID_CONFIG_MERGE, RAW_TOKEN, conf_value
from scoperator.knobs import INVALID_PATCH, INVALID_SERVICE
from scoperator.models import Cluster, SuperCluster
from scoperator.naming import KubeTarget, Topology
from scoperator.patches import PatchError, json_patch, strategic_merge

# Keys a pod template or a config would use, plus arbitrary text (odd characters included).
NAMES = st.sampled_from(
    ["metadata", "spec", "labels", "containers", "env", "volumes", "ports", "name", "port",
     "containerPort", "$patch", "cluster", "gateway", "tls", "accounts", "authorization",
     "max_payload", "debug", "app.kubernetes.io/name"]
)  # fmt: skip
KEYS = NAMES | st.text(max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["replace", "delete", "merge", "<< 2MB >>", "<< $X >>", "scserver"])
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)
OBJECTS = st.dictionaries(KEYS, JSON, max_size=5)
POINTERS = (
    st.lists(KEYS | st.sampled_from(["0", "1", "-", "00", "~0", "~1"]), max_size=4)
    .map(lambda parts: "".join("/" + p for p in parts))
    .filter(lambda pointer: "\n" not in pointer)
)  # the CRD's pattern refuses those at admission


def _admitted(op: dict[str, Any]) -> bool:
    """What the model admits (move/copy need from; add/replace/test need value)."""
    needs = {"move": "from", "copy": "from"}.get(op["op"], "value" if op["op"] != "remove" else "")
    return not needs or needs in op


OPERATIONS = st.lists(
    st.fixed_dictionaries(
        {
            "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]),
            "path": POINTERS,
        },
        optional={"value": JSON, "from": POINTERS},
    ).filter(_admitted),
    max_size=4,
)
# A pod-template-like document to patch, so the patches reach deep paths.
TEMPLATE = {
    "metadata": {"labels": {"app.kubernetes.io/name": "scserver"}},
    "spec": {
        "containers": [{"name": "scserver", "ports": [{"containerPort": 4222}], "env": []}],
        "volumes": [{"name": "config"}],
    },
}
DOCS = st.just(TEMPLATE) | OBJECTS
EXAMPLES = settings(max_examples=150, deadline=None)


@EXAMPLES
@given(base=DOCS, patch=JSON)
def test_strategic_merge_returns_or_raises_patch_error(base: dict, patch: Any) -> None:
    before = (copy.deepcopy(base), copy.deepcopy(patch))
    try:
        result = strategic_merge(base, patch)
    except PatchError as exc:
        assert exc.path.startswith("/")
    else:
        if isinstance(patch, dict) and patch.get("$patch") != "replace":
            assert isinstance(result, dict)
    assert (base, patch) == before  # inputs untouched


@EXAMPLES
@given(doc=DOCS, operations=OPERATIONS)
def test_json_patch_returns_or_raises_patch_error(doc: dict, operations: list[dict]) -> None:
    before = (copy.deepcopy(doc), copy.deepcopy(operations))
    try:
        json_patch(doc, operations)
    except PatchError as exc:
        assert str(exc).startswith(exc.path)
    assert (doc, operations) == before


def _sc(spec: dict[str, Any]) -> SuperCluster:
    return SuperCluster.model_validate(
        {
            "metadata": {"name": "sc", "namespace": "ns"},
            "spec": {"tls": {"mode": "Disabled"}, **spec},
        }
    )


def _render(
    spec: dict[str, Any], cluster_spec: dict[str, Any] | None = None
) -> tuple[dict[str, list[dict]], dict[str, tuple[str, str]]]:
    sc = _sc(spec)
    cluster = Cluster.model_validate(
        {
            "metadata": {"name": "east", "namespace": "ns"},
            "spec": {"superCluster": "sc", **(cluster_spec or {})},
        }
    )
    secrets = {**fixed_credentials("sc"), "u": {"admin": "admin-pass"}}
    return _render_members(Topology.build(sc, [cluster], KubeTarget("ns")), secrets)


def _rendered_or_refused(
    spec: dict[str, Any], reasons: set[str], cluster_spec: dict[str, Any] | None = None
) -> None:
    rendered, refused = _render(spec, cluster_spec)
    assert set(rendered) | set(refused) == {"east"}
    for reason, message in refused.values():
        assert reason in reasons, (reason, message)
        assert message


CONFIG_SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@CONFIG_SETTINGS
@given(merge=OBJECTS, over=st.none() | OBJECTS)
def test_any_config_merge_renders_or_is_refused_with_a_condition(
    merge: dict, over: dict | None
) -> None:
    """The SuperCluster's fragment, and a Cluster's merged over it (of any other shape)."""
    cluster_spec = None if over is None else {"config": {"merge": over}}
    _rendered_or_refused({"config": {"merge": merge}}, {INVALID_CONFIG_MERGE}, cluster_spec)


@CONFIG_SETTINGS
@given(patch=OBJECTS, operations=OPERATIONS)
def test_any_pod_template_patch_renders_or_is_refused_with_a_condition(
    patch: dict, operations: list[dict]
) -> None:
    spec = {"podTemplatePatch": patch, "podTemplateJsonPatch": operations}
    _rendered_or_refused(spec, {INVALID_PATCH})


@CONFIG_SETTINGS
@given(which=st.sampled_from(["client", "headless", "gateway"]), patch=OBJECTS, ops=OPERATIONS)
def test_any_service_patch_renders_or_is_refused_with_a_condition(
    which: str, patch: dict, ops: list[dict]
) -> None:
    spec = {"services": {which: {"patch": patch, "jsonPatch": ops}}}
    _rendered_or_refused(spec, {INVALID_PATCH, INVALID_SERVICE})


# Values the config text can carry: no null (refused before rendering), no control characters
# (likewise), no raw-token strings (written unquoted on purpose).
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc"]) | st.sampled_from("\n\t\r"),
    max_size=12,
).filter(lambda text: RAW_TOKEN.match(text) is None)
CONF_VALUES = st.recursive(
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@EXAMPLES
@given(value=CONF_VALUES)
def test_conf_value_reads_back_as_the_same_value(value: Any) -> None:
    """What the merge writes is what the server reads: every JSON value the checks let through
    (floats of any magnitude, quoted keys, escapes) parses back equal."""
    from scserver.conf.parser import parse_string, to_plain

    parsed = to_plain(parse_string(f"x: {conf_value(value)}\n", "/nonexistent/x.conf", "/", env={}))
    assert parsed == {"x": value}


def test_delete_directive_on_a_map_removes_it_and_never_lands_in_a_list() -> None:
    """kubectl's `{field: {$patch: delete}}` drops the field (it used to be a silent no-op);
    on the whole object it is refused; a delete item never lands in a replaced list."""
    base = {"spec": {"securityContext": {"runAsUser": 1}, "args": ["a"], "x": 1}}
    patch = {"spec": {"securityContext": {"$patch": "delete"}, "args": ["b", {"$patch": "delete"}]}}
    assert strategic_merge(base, patch) == {"spec": {"args": ["b"], "x": 1}}
    with pytest.raises(PatchError, match="not the whole object"):
        strategic_merge(base, {"$patch": "delete"})


@pytest.mark.parametrize(
    ("have", "value", "passes"),
    [(1, True, False), (True, 1, False), (0, False, False), (1, 1.0, True),
     ([1], [True], False), ({"a": 1}, {"a": 1}, True), ("1", 1, False), (None, None, True)],
)  # fmt: skip
def test_json_patch_test_op_compares_as_json(have: Any, value: Any, passes: bool) -> None:
    """RFC 6902 `test`: a boolean is not a number (Python's == says True == 1)."""
    ops = [{"op": "test", "path": "/v", "value": value}]
    if passes:
        assert json_patch({"v": have}, ops) == {"v": have}
    else:
        with pytest.raises(PatchError, match="test failed"):
            json_patch({"v": have}, ops)


def _nested(depth: int) -> dict[str, Any]:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("spec", "reason", "field"),
    [
        ({"config": {"merge": _nested(500)}}, INVALID_CONFIG_MERGE, "spec.config.merge"),
        ({"podTemplatePatch": _nested(500)}, INVALID_PATCH, "spec.podTemplatePatch"),
        ({"services": {"client": {"patch": _nested(500)}}}, INVALID_PATCH, "services.client"),
        (
            {"podTemplateJsonPatch": [{"op": "add", "path": "/x", "value": _nested(500)}]},
            INVALID_PATCH,
            "spec.podTemplateJsonPatch",
        ),
    ],
)
def test_a_hostile_nesting_depth_is_refused_not_a_recursion_error(
    spec: dict[str, Any], reason: str, field: str
) -> None:
    """500 levels pass the API server and JSON parsing but overflowed copy.deepcopy."""
    rendered, refused = _render(spec)
    assert rendered == {}
    got_reason, message = refused["east"]
    assert got_reason == reason and field in message and "deeper than 64" in message
    # A config or patch nested like a real one still renders.
    assert _render({"podTemplatePatch": {"metadata": _nested(60)}})[1] == {}


@pytest.mark.parametrize(
    ("merge", "key"),
    [
        ({"PORT": 4333}, "PORT"),
        ({"Server_Name": "x"}, "Server_Name"),
        ({"net": "10.0.0.1"}, "net"),  # host's other name
        ({"monitor_port": 9999}, "monitor_port"),  # http_port's other name
        ({"gateway": {"Port": 1}}, "gateway.Port"),
        ({"Cluster": {"NAME": "other"}}, "Cluster.NAME"),
        ({"cluster": {"host": "10.0.0.1"}}, "cluster.host"),
        ({"cluster": {"a": 1}, "CLUSTER": {"b": 2}}, "CLUSTER"),
    ],
)
def test_protection_ignores_case_and_aliases_as_the_server_does(merge: dict, key: str) -> None:
    """The config language reads `PORT` as `port` and `net` as `host`: each slipped past the
    protected keys and moved a listener away from its Service (review fix)."""
    _, refused = _render({"config": {"merge": merge}})
    reason, message = refused["east"]
    assert reason == INVALID_CONFIG_MERGE and f"spec.config.merge.{key}:" in message


def test_a_block_in_another_case_merges_into_the_rendered_block() -> None:
    """`Cluster: {...}` is the cluster block: merged into it, not written as a second block
    that replaces the rendered one (and its routes) wholesale; account names keep their case."""
    rendered, refused = _render(
        {"config": {"merge": {"Cluster": {"no_advertise": True}, "Max_Payload": 4096}}}
    )
    assert refused == {}
    conf = rendered["east"][0]["data"]["scserver.conf"]
    block = conf[conf.index("\ncluster {") : conf.index("\n}", conf.index("\ncluster {"))]
    assert "  no_advertise: true" in block and "routes" in block
    assert "\nCluster" not in conf and "Max_Payload: 4096" in conf


@pytest.mark.parametrize(
    "merge",
    [
        {"authorization": {"token": "s3cret"}},
        {"authorization": {"user": "a", "PASSWORD": "s3cret"}},
        {"accounts": {"B": {"users": [{"user": "b", "pass": "s3cret"}]}}},
    ],
)
def test_a_literal_credential_is_refused_not_written_to_the_configmap(merge: dict) -> None:
    """config.merge lands in the ConfigMap: a clear-text password or token there is readable by
    anyone who can read ConfigMaps. The refusal names the key, never the value."""
    _, refused = _render({"config": {"merge": merge}})
    reason, message = refused["east"]
    assert reason == INVALID_CONFIG_MERGE and "ConfigMap in clear text" in message
    assert "s3cret" not in message


def test_credentials_from_the_environment_or_as_bcrypt_hashes_are_accepted() -> None:
    bcrypt_hash = "$2b$04$SBwqWyPm1pFlhoBc8N9jau0PVGjuhV99Ojgno1TrRWebrz4AH.HBG"
    spec = {
        "pod": {"env": [{"name": "B_PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
        "config": {"merge": {"accounts": {"B": {"users": [
            {"user": "b", "password": "<< $B_PASS >>"},
            {"user": "c", "password": bcrypt_hash},
        ]}}}},
    }  # fmt: skip
    rendered, refused = _render(spec)
    assert refused == {}
    conf = rendered["east"][0]["data"]["scserver.conf"]
    assert "password: $B_PASS" in conf and bcrypt_hash in conf


@pytest.mark.parametrize("op", ["add", "replace", "test"])
def test_a_json_patch_op_without_its_value_is_refused_by_the_model(op: str) -> None:
    """A forgotten value used to become an explicit null written into the object."""
    with pytest.raises(ValidationError, match=f"JSON patch op {op} needs value"):
        _sc({"podTemplateJsonPatch": [{"op": op, "path": "/spec/x"}]})
    _sc({"podTemplateJsonPatch": [{"op": op, "path": "/spec/x", "value": None}]})  # explicit null


def test_node_port_goes_to_the_client_port_wherever_it_is_listed() -> None:
    """ports: [monitor, client] gave the nodePort to the monitor port (it went to ports[0])."""
    services = {"client": {"type": "NodePort", "nodePort": 30222, "ports": ["monitor", "client"]}}
    rendered, refused = _render({"services": services})
    assert refused == {}
    (svc,) = [
        o for o in rendered["east"] if o["kind"] == "Service" and o["metadata"]["name"] == "east"
    ]
    assert {p["name"]: p.get("nodePort") for p in svc["spec"]["ports"]} == {
        "monitor": None,
        "client": 30222,
    }
    services["client"]["ports"] = ["monitor"]
    reason, message = _render({"services": services})[1]["east"]
    assert reason == INVALID_SERVICE and "list client in spec.services.client.ports" in message


def test_reserved_mount_paths_match_the_rendered_server_container() -> None:
    from scoperator.knob_models import RESERVED_MOUNT_PATHS
    from scoperator.naming import CONFIG_DIR

    rendered, _ = _render({})
    (sts,) = [o for o in rendered["east"] if o["kind"] == "StatefulSet"]
    mounts = {
        m["mountPath"] for m in sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    }
    assert set(RESERVED_MOUNT_PATHS) == mounts and CONFIG_DIR in mounts


@pytest.mark.parametrize(
    "path", ["/etc/scserver", "/etc/scserver/", "/etc/scserver/extra", "/tmp/x"]
)
def test_an_extra_mount_over_the_servers_own_is_refused(path: str) -> None:
    mount = {"name": "v", "mountPath": path}
    with pytest.raises(ValidationError, match="which the server container uses"):
        _sc({"pod": {"extraVolumeMounts": [mount]}})
    _sc({"pod": {"extraVolumeMounts": [{"name": "v", "mountPath": "/etc/scserver-extra"}]}})


def test_a_fault_in_the_credentials_include_is_named_never_quoted() -> None:
    """The include is rendered from Secrets: its lines must not reach a condition (and the
    config's own line at that number, quoted before, was the wrong one)."""
    from scoperator.config_merge import ConfigMergeError, check_config

    files = {
        "scserver.conf": "listen: 127.0.0.1:4222\ninclude auth.conf\n",
        "auth.conf": 'users_pass: "hunter2\n',  # unterminated: a parse fault on line 1
    }
    with pytest.raises(ConfigMergeError) as info:
        check_config(files, "east-0")
    message = str(info.value)
    assert "(auth.conf, line 1)" in message
    assert "hunter2" not in message and "listen" not in message
