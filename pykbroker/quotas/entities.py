"""Client quota entities and keys (KIP-546), validated and matched as Kafka's controller does.

An entity is a set of (type, name) pairs: user, client-id or ip, where a None name is the type's
default entity ("<default>"). Allowed combinations are user, client-id, user + client-id, or ip
alone. Rules follow Kafka's ClientQuotaControlManager (alterations) and ClientQuotasImage
(DescribeClientQuotas filters); every refusal is INVALID_REQUEST with Kafka's message, except an
unknown entity type in a describe filter, which Kafka answers with UNSUPPORTED_VERSION.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, Mapping

from ..protocol.errors import ErrorCode

USER, CLIENT_ID, IP = "user", "client-id", "ip"
ENTITY_TYPES = (USER, CLIENT_ID, IP)

#: (type, name) pairs sorted by type; a name of None is the default entity of that type.
QuotaEntity = tuple[tuple[str, "str | None"], ...]


@dataclass(frozen=True)
class QuotaKey:
    name: str
    kafka_type: str  # LONG, DOUBLE or INT: Kafka's QuotaConfig ConfigDef type
    doc: str


#: Kafka's QuotaConfig.userAndClientQuotaConfigs() and ipConfigs().
USER_CLIENT_KEYS = {k.name: k for k in (
    QuotaKey("producer_byte_rate", "LONG", "A rate representing the upper bound (bytes/sec) for producer traffic."),
    QuotaKey("consumer_byte_rate", "LONG", "A rate representing the upper bound (bytes/sec) for consumer traffic."),
    QuotaKey("request_percentage", "DOUBLE",
             "A percentage representing the upper bound of time spent for processing requests."),
    QuotaKey("controller_mutation_rate", "DOUBLE", "The rate at which mutations are accepted for the create "
             "topics request, the create partitions request and the delete topics request."),
)}
IP_KEYS = {k.name: k for k in (
    QuotaKey("connection_creation_rate", "INT",
             "An int representing the upper bound of connections accepted for the specified IP."),
)}
_INTEGRAL_MAX = {"INT": 2**31 - 1, "LONG": 2**63 - 1}

MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2


class QuotaError(Exception):
    """A refused alteration or filter: the Kafka error code and its message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _invalid(message: str) -> QuotaError:
    return QuotaError(ErrorCode.INVALID_REQUEST, message)


def entity_text(pairs: Iterable[tuple[str, str | None]]) -> str:
    """The entity as Kafka's messages print it: ClientQuotaEntity(entries={user=u, client-id=c}),
    the pairs in the order of Java's HashMap of that size."""
    ordered = sorted(pairs, key=lambda pair: _java_bucket(pair[0]))
    return "ClientQuotaEntity(entries={" + ", ".join(f"{t}={n}" if n is not None else f"{t}=null"
                                                     for t, n in ordered) + "})"


def _java_bucket(text: str) -> int:
    h = 0
    for ch in text:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return (h ^ (h >> 16)) & 15


def validate_entity(pairs: Iterable[tuple[str, str | None]],
                    resolvable: frozenset[str] | None = None) -> tuple[QuotaEntity, dict[str, QuotaKey]]:
    """The entity, and the quota keys it may carry; QuotaError as Kafka's controller refuses it.
    An ip entity must name an address or a host name in `resolvable` (looked up by the caller, off
    the event loop); None accepts any host name (quotas read back from their file)."""
    seen: dict[str, str | None] = {}
    for entity_type, name in pairs:
        if entity_type in seen:
            raise _invalid(f"Invalid client quota entity, duplicate entity entry {entity_type}")
        if entity_type not in ENTITY_TYPES:
            raise _invalid(f"Unhandled client quota entity type: {entity_type}")
        if name is not None and name == "":
            raise _invalid(f"Empty {entity_type} not supported")
        seen[entity_type] = name
    if not seen:
        raise _invalid("Invalid empty client quota entity")
    if IP in seen:
        if len(seen) > 1:
            raise _invalid("Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId")
        if not _valid_ip(seen[IP], resolvable):
            raise _invalid(f"{seen[IP]} is not a valid IP or resolvable host.")
        keys = IP_KEYS
    else:
        keys = USER_CLIENT_KEYS
    return tuple(sorted(seen.items())), keys


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _valid_ip(name: str | None, resolvable: frozenset[str] | None) -> bool:
    """The default entity, an address, or a host name that resolves (Kafka's InetAddress.getByName)."""
    return name is None or is_address(name) or resolvable is None or name in resolvable


def validate_value(keys: Mapping[str, QuotaKey], key: str, value: float) -> None:
    """Kafka's validateQuotaKeyValue: a known key, a positive value, integral for INT and LONG keys."""
    spec = keys.get(key)
    if spec is None:
        raise _invalid(f"Invalid configuration key {key}")
    if value <= 0.0:
        raise _invalid(f"Quota {key} must be greater than 0")
    if spec.kafka_type in _INTEGRAL_MAX:
        if value > _INTEGRAL_MAX[spec.kafka_type]:
            article = "an" if spec.kafka_type == "INT" else "a"
            raise _invalid(f"Proposed value for {key} is too large for {article} {spec.kafka_type}.")
        if abs(value % 1.0) > 1e-6:
            raise _invalid(f"{key} cannot be a fractional value.")


@dataclass(frozen=True)
class QuotaFilter:
    """A DescribeClientQuotas filter: exact names (None: the default entity), types that must be
    present with any name, and whether the entity may have other types too."""

    exact: Mapping[str, str | None]
    specified: frozenset[str]
    strict: bool

    @classmethod
    def from_components(cls, components: Iterable[tuple[str, int, str | None]], strict: bool) -> "QuotaFilter":
        exact: dict[str, str | None] = {}
        specified: set[str] = set()
        for entity_type, match_type, match in components:
            if not entity_type:
                raise _invalid("Invalid empty entity type.")
            if entity_type in exact or entity_type in specified:
                raise _invalid(f"Entity type {entity_type} cannot appear more than once in the filter.")
            if entity_type not in ENTITY_TYPES:
                raise QuotaError(ErrorCode.UNSUPPORTED_VERSION, f"Unsupported entity type {entity_type}")
            if match_type == MATCH_EXACT:
                if match is None:
                    raise _invalid("Request specified MATCH_TYPE_EXACT, but set match string to null.")
                exact[entity_type] = match
            elif match_type == MATCH_DEFAULT:
                if match is not None:
                    raise _invalid("Request specified MATCH_TYPE_DEFAULT, but also specified a match string.")
                exact[entity_type] = None
            elif match_type == MATCH_SPECIFIED:
                if match is not None:
                    raise _invalid("Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.")
                specified.add(entity_type)
            else:
                raise _invalid(f"Unknown match type {match_type}")
        used = set(exact) | specified
        if IP in used and used & {USER, CLIENT_ID}:
            raise _invalid("Invalid entity filter component combination. IP filter component should not be "
                           "used with user or clientId filter component.")
        return cls(exact, frozenset(specified), strict)

    def matches(self, entity: QuotaEntity) -> bool:
        names = dict(entity)
        if self.strict and len(names) != len(self.exact) + len(self.specified):
            return False
        return (all(t in names and names[t] == n for t, n in self.exact.items())
                and all(t in names for t in self.specified))
