"""The base of every resource model: camelCase aliases, strict fields, schema helpers.

Split from models.py so that knob_models.py (chart-style settings) can share it without an
import cycle (models.py uses the knob models in both specs).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# nats-server durations: a number with a unit.
DURATION_PATTERN = r"^[0-9]+(ms|s|m|h)$"


def preserve_unknown(description: str) -> dict[str, Any]:
    """Field arguments for a free-form Kubernetes object kept as a dict: the CRD
    preserves its unknown fields and the API server validates it in the rendered object."""
    return {
        "description": description,
        "json_schema_extra": {"x-kubernetes-preserve-unknown-fields": True},
    }


def list_map(key: str) -> dict[str, Any]:
    """Schema extras of a list whose items are identified by `key` (merge patches per item)."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": [key]}


class Model(BaseModel):
    """Base: camelCase aliases, population by either name, unknown fields rejected.

    Rejecting unknown fields catches typos in hand-written YAML early (`scoperator render`);
    the API server prunes them anyway because the CRD schema is structural.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_json(self) -> dict[str, Any]:
        """Serialise as the API server stores it: camelCase, no unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
