"""`scoperator render` prints everything the operator would apply for a file: every member's
objects, then the toolbox's Secret and Deployment when spec.toolbox.enabled (golden files
shared with test_render.py and test_knobs.py)."""

from __future__ import annotations

import base64
import io
import json

import yaml
from tests.operator.helpers import GOLDEN

from scoperator.cli import build_parser, cmd_render

EXAMPLES = GOLDEN.parents[2] / "examples"


def _render(example: str, *extra: str) -> list[dict]:
    out, err = io.StringIO(), io.StringIO()
    args = build_parser().parse_args(["render", "-f", str(EXAMPLES / example), *extra])
    assert cmd_render(args, out, err) == 0, err.getvalue()
    return list(yaml.safe_load_all(out.getvalue()))


def _golden(*paths: str) -> list[dict]:
    return [doc for p in paths for doc in yaml.safe_load_all((GOLDEN / p).read_text())]


def test_render_prints_the_toolbox_when_enabled() -> None:
    docs = _render("chart-values.yaml")
    assert docs == _golden(
        "chart-values/east.yaml", "chart-values/west.yaml", "chart-values-toolbox/toolbox.yaml"
    )
    deployment = docs[-1]
    assert (deployment["kind"], deployment["metadata"]["name"]) == ("Deployment", "edge-toolbox")


def test_render_has_no_toolbox_when_disabled() -> None:
    docs = _render("supercluster.yaml")
    assert docs == _golden("supercluster/east.yaml", "supercluster/west.yaml")
    assert not [d for d in docs if d["kind"] == "Deployment"]


def test_render_toolbox_contexts_follow_the_cluster_domain() -> None:
    docs = _render("chart-values.yaml", "--cluster-domain", "example.internal")
    secret = next(
        d for d in docs if d["metadata"]["name"] == "edge-toolbox" and d["kind"] == "Secret"
    )
    east = json.loads(base64.b64decode(secret["data"]["context__east.json"]))
    assert east["url"] == "nats://east.messaging.svc.example.internal:4222"
