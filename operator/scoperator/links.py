"""Link credentials: how servers authenticate routes and gateways to each other.

Every SuperCluster has one route user/password and one gateway user/password, random, kept in
the Secret `<supercluster>-credentials` (created by the reconciler when absent, never
overwritten: copying it to another Kubernetes cluster is how two sites share gateway
credentials). They are rendered as `authorization` in the cluster and gateway blocks, and:

- routes: nats-server sends a route's credentials only from the route URL's userinfo, so every
  route URL carries them (`nats://user:pass@host:6222`);
- gateways: nats-server takes a gateway's credentials from the URL's userinfo and falls back to
  its own gateway `authorization` (server/gateway.go, sendGatewayConnect). Members share the
  SuperCluster's credentials, so their URLs stay plain, and so do the gateways discovered by
  gossip; an external gateway whose Secret (`credentialsSecret`) holds the remote side's
  credentials gets them in its URLs.

Credentials must never land in a ConfigMap, and variables do not expand inside quoted strings,
so URLs with credentials are defined as array variables in the credentials include (the auth
Secret) and the config refers to them (`routes: $SC_ROUTE_URLS`); the config keeps the same
URLs without credentials as a comment, for humans.
"""

from __future__ import annotations

import re
import secrets as random
from dataclasses import dataclass, field
from urllib.parse import quote as urlquote
from urllib.parse import urlsplit, urlunsplit

from scoperator.models import SecretKeyRef, SuperCluster
from scoperator.naming import credentials_secret_name

ROUTE_USER = "route-user"
ROUTE_PASSWORD = "route-password"
GATEWAY_USER = "gateway-user"
GATEWAY_PASSWORD = "gateway-password"
CREDENTIAL_KEYS = (ROUTE_USER, ROUTE_PASSWORD, GATEWAY_USER, GATEWAY_PASSWORD)
# Keys of an external gateway's credentials Secret: the same as in the credentials Secret, so
# that the remote site's `<supercluster>-credentials` can be copied as it is.
EXTERNAL_USER = GATEWAY_USER
EXTERNAL_PASSWORD = GATEWAY_PASSWORD
CA_KEY = "ca.crt"

# Variables of the credentials include.
ROUTE_USER_VAR = "SC_ROUTE_USER"
ROUTE_PASSWORD_VAR = "SC_ROUTE_PASSWORD"
GATEWAY_USER_VAR = "SC_GATEWAY_USER"
GATEWAY_PASSWORD_VAR = "SC_GATEWAY_PASSWORD"
ROUTE_URLS_VAR = "SC_ROUTE_URLS"


def gateway_urls_var(name: str) -> str:
    """The include variable holding an external gateway's URLs with its credentials."""
    return "SC_GATEWAY_URLS_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def generate_credentials() -> dict[str, str]:
    """Fresh credentials for a SuperCluster: fixed user names, 32 random URL-safe characters.

    URL-safe (letters, digits, `-`, `_`) so that they need no escaping in URLs or configs.
    """
    return {
        ROUTE_USER: "route",
        ROUTE_PASSWORD: random.token_urlsafe(24),
        GATEWAY_USER: "gateway",
        GATEWAY_PASSWORD: random.token_urlsafe(24),
    }


def with_userinfo(url: str, user: str, password: str) -> str:
    """`url` with `user:password@` (percent-encoded) in front of its host."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{urlquote(user, safe='')}:{urlquote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class LinkCredentials:
    """The credentials one SuperCluster renders, and those of its external gateways."""

    route_user: str
    route_password: str
    gateway_user: str
    gateway_password: str
    externals: dict[str, tuple[str, str]] = field(default_factory=dict)


def link_refs(supercluster: SuperCluster) -> list[SecretKeyRef]:
    """Every Secret key the link credentials need (own Secret, then externals')."""
    own = credentials_secret_name(supercluster.name)
    refs = [SecretKeyRef(name=own, key=k) for k in CREDENTIAL_KEYS]
    for gw in supercluster.spec.external_gateways:
        if gw.credentials_secret:
            refs.append(SecretKeyRef(name=gw.credentials_secret, key=EXTERNAL_USER))
            refs.append(SecretKeyRef(name=gw.credentials_secret, key=EXTERNAL_PASSWORD))
        if gw.ca_secret and supercluster.spec.tls.enabled:
            refs.append(SecretKeyRef(name=gw.ca_secret, key=CA_KEY))
    return refs


def link_credentials(
    supercluster: SuperCluster, values: dict[str, dict[str, str]] | object
) -> LinkCredentials:
    """The credentials from decoded Secret values (callers check completeness first)."""
    vals: dict[str, dict[str, str]] = values  # type: ignore[assignment]
    own = vals[credentials_secret_name(supercluster.name)]
    externals = {
        gw.name: (
            vals[gw.credentials_secret][EXTERNAL_USER],
            vals[gw.credentials_secret][EXTERNAL_PASSWORD],
        )
        for gw in supercluster.spec.external_gateways
        if gw.credentials_secret
    }
    return LinkCredentials(
        own[ROUTE_USER], own[ROUTE_PASSWORD], own[GATEWAY_USER], own[GATEWAY_PASSWORD], externals
    )
