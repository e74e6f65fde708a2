"""Texts of the -ERR lines nats-server sends; clients match on them, so they must not drift."""

AUTH_VIOLATION = "Authorization Violation"
AUTH_TIMEOUT = "Authentication Timeout"
MAX_PAYLOAD = "Maximum Payload Violation"
MAX_CONTROL_LINE = "maximum control line exceeded"
UNKNOWN_OP = "Unknown Protocol Operation"
STALE = "Stale Connection"
MAX_CONNECTIONS = "maximum connections exceeded"
MAX_SUBS = "maximum subscriptions exceeded"
INVALID_SUBJECT = "Invalid Subject"
INVALID_PUB_SUBJECT = "Invalid Publish Subject"
BAD_CLIENT_PROTOCOL = "invalid client protocol"
NO_RESPONDERS_NEEDS_HEADERS = "no responders requires headers support"
ROUTE_PORT = "attempted to connect to route port"
GATEWAY_PORT = "attempted to connect to gateway port"


def pub_permission(subject: str) -> str:
    return f'Permissions Violation for Publish to "{subject}"'


def sub_permission(subject: str, queue: str | None = None) -> str:
    if queue:
        return f'Permissions Violation for Subscription to "{subject}" using queue "{queue}"'
    return f'Permissions Violation for Subscription to "{subject}"'


def reply_permission(reply: str) -> str:
    return f'Permissions Violation for Publish with Reply of "{reply}"'
