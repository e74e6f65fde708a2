"""metrics.serviceMonitor: a ServiceMonitor per Cluster, the alternative to the PodMonitor for
Prometheus setups that select ServiceMonitors only (golden file: the chart-values example with
its PodMonitor switched to a ServiceMonitor, rendered by `scoperator render`)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import yaml
from tests.operator.helpers import EXAMPLES, GOLDEN

from scoperator.cli import build_parser, cmd_render

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def _render(tmp_path: Path, metrics: dict, **tls: object) -> list[dict]:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / "chart-values.yaml").read_text()) if d]
    for doc in docs:
        if doc["kind"] == "SuperCluster":
            doc["spec"]["metrics"] = metrics
            if tls:
                doc["spec"]["tls"] = tls
    path = tmp_path / "in.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    out, err = io.StringIO(), io.StringIO()
    assert cmd_render(build_parser().parse_args(["render", "-f", str(path)]), out, err) == 0
    return list(yaml.safe_load_all(out.getvalue()))


def test_service_monitor_golden_and_the_port_it_names(tmp_path: Path) -> None:
    metrics = {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"},
                                  "interval": "30s"}}  # fmt: skip
    docs = _render(tmp_path, metrics)
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert not [d for d in docs if d["kind"] == "PodMonitor"]
    text = yaml.safe_dump_all(monitors, sort_keys=False)
    path = GOLDEN / "chart-values-servicemonitor" / "servicemonitors.yaml"
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs; run with UPDATE_GOLDEN=1 and review"
    east = next(m for m in monitors if m["metadata"]["name"] == "east")
    assert east["metadata"]["labels"]["release"] == "prometheus"
    assert east["spec"]["endpoints"] == [{"port": "monitor", "path": "/metrics", "interval": "30s"}]
    # the Services it selects: only the headless one has the port it names
    selector = east["spec"]["selector"]["matchLabels"]
    services = [
        d
        for d in docs
        if d["kind"] == "Service"
        and selector.items() <= (d["metadata"].get("labels") or {}).items()
    ]
    with_port = [s["metadata"]["name"] for s in services
                 if any(p["name"] == "monitor" for p in s["spec"]["ports"])]  # fmt: skip
    assert len(services) >= 2 and with_port == ["east-headless"], services


def test_service_monitor_over_https_and_next_to_a_pod_monitor(tmp_path: Path) -> None:
    metrics = {"podMonitor": {"enabled": True}, "serviceMonitor": {"enabled": True}}
    docs = _render(tmp_path, metrics, mode="Managed", clients={"enabled": True}, monitoring="HTTPS")
    kinds = [d["kind"] for d in docs if d["metadata"]["name"] == "east"]
    assert kinds[-2:] == ["PodMonitor", "ServiceMonitor"]  # last: everything else applies first
    (endpoint,) = next(d for d in docs if d["kind"] == "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"


def test_metrics_prefix_asks_for_the_chart_exporters_names(tmp_path: Path) -> None:
    """metrics.prefix: nats -> both monitors scrape /metrics?prefix=nats (nats_varz_*, as the
    NATS Helm chart's exporter names them); a Cluster's own prefix wins."""
    metrics = {"podMonitor": {"enabled": True}, "serviceMonitor": {"enabled": True},
               "prefix": "nats"}  # fmt: skip
    docs = _render(tmp_path, metrics)
    (pod,) = next(d for d in docs if d["kind"] == "PodMonitor")["spec"]["podMetricsEndpoints"]
    (svc,) = next(d for d in docs if d["kind"] == "ServiceMonitor")["spec"]["endpoints"]
    assert pod["params"] == svc["params"] == {"prefix": ["nats"]}


def test_metrics_prefix_is_validated() -> None:
    from pydantic import ValidationError

    from scoperator.knob_models import MetricsSpec

    assert MetricsSpec.model_validate({"prefix": "nats_1"}).prefix == "nats_1"
    with pytest.raises(ValidationError, match="prefix"):
        MetricsSpec.model_validate({"prefix": "nats-x"})


def test_a_clusters_metrics_prefix_wins() -> None:
    from tests.operator.test_knobs import _cl, _sc

    from scoperator.knobs import metrics_prefix

    sc = _sc(metrics={"prefix": "nats"})
    assert metrics_prefix(sc, _cl()) == "nats"
    assert metrics_prefix(sc, _cl(metrics={"prefix": "gnatsd"})) == "gnatsd"
    assert metrics_prefix(_sc(), _cl()) is None
