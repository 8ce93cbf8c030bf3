"""Which APIs and versions the broker serves: the single source of ApiVersions.

A handler module registers one async function per API with the versions it implements. Nothing is
advertised that is not registered, and a request for an unregistered version is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable, NamedTuple

from ..protocol.messages import API_KEYS, API_VERSION_RANGES
from ..protocol.primitives import Msg

if TYPE_CHECKING:
    from ..broker import Broker


#: Kafka's "authorized operations not requested" bitfield value (INT32 min).
AUTHORIZED_OPERATIONS_OMITTED = -2147483648

#: Kafka's AclOperation codes, and the operations each resource type supports (AclEntry).
ACL_OPERATION_CODES = {"READ": 3, "WRITE": 4, "CREATE": 5, "DELETE": 6, "ALTER": 7, "DESCRIBE": 8,
                       "CLUSTER_ACTION": 9, "DESCRIBE_CONFIGS": 10, "ALTER_CONFIGS": 11, "IDEMPOTENT_WRITE": 12}
SUPPORTED_OPERATIONS = {
    "topic": ("READ", "WRITE", "CREATE", "DESCRIBE", "DELETE", "ALTER", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"),
    "group": ("READ", "DESCRIBE", "DELETE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"),
    "cluster": ("CREATE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE", "ALTER", "DESCRIBE"),
}


def authorized_operations(resource: str, requested: bool = True) -> int:
    """The bitfield Kafka reports without an authorizer: every operation the resource supports
    (AuthHelper.authorizedOperations), or the "omitted" value when the client did not ask."""
    if not requested:
        return AUTHORIZED_OPERATIONS_OMITTED
    return sum(1 << ACL_OPERATION_CODES[op] for op in SUPPORTED_OPERATIONS[resource])


class RequestContext(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    peer: str
    connection_id: int
    #: Size of the request frame (header and body), which Kafka's produce quota records.
    request_bytes: int = 0

    @property
    def client_host(self) -> str:
        """The peer's host as Kafka reports it in group descriptions ("/127.0.0.1")."""
        return "/" + self.peer.rsplit(":", 1)[0]


HandlerFn = Callable[["Broker", RequestContext, Msg], Awaitable["Msg | None"]]


@dataclass(frozen=True)
class Handler:
    api_key: int
    min_version: int
    max_version: int
    fn: HandlerFn


HANDLERS: dict[int, Handler] = {}


def handles(api_name: str, min_version: int, max_version: int) -> Callable[[HandlerFn], HandlerFn]:
    """Register `fn` for Kafka's API `api_name` (e.g. "PRODUCE") at versions min..max."""
    api_key = API_KEYS[api_name]
    low, high = API_VERSION_RANGES[api_key]
    if not low <= min_version <= max_version <= high:
        raise ValueError(f"{api_name} v{min_version}-{max_version} is outside Kafka's v{low}-{high}")

    def register(fn: HandlerFn) -> HandlerFn:
        if api_key in HANDLERS:
            raise ValueError(f"{api_name} registered twice")
        HANDLERS[api_key] = Handler(api_key, min_version, max_version, fn)
        return fn
    return register
