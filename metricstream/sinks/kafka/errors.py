"""What a failed delivery means: librdkafka's error codes in one table.

Every error the producer reports for a message, in its delivery report or
when `produce` refuses it at once, is judged here by its librdkafka name
(``KafkaError.name()``), and only here:

- `Verdict.RETRY`: not sent yet, or failed in a way the broker may not
  repeat (timeouts, no leader, brokers down, queue purged). The message goes
  back through the lane's retry; only the failed messages are sent again.
- `Verdict.REJECT`: retrying cannot help (too large, invalid record, no such
  topic and the broker does not create it). Its events are dropped with
  reason ``rejected``, the broker's message in the sink's ``last_error``.
- `Verdict.MISCONFIGURED`: the sink cannot work as configured (credentials,
  permissions, an option the broker refuses). Dropped as ``rejected`` too,
  and the sink is reported unhealthy until a write succeeds.
- `Verdict.REBUILD`: the producer itself is unusable or unsure of its state
  (a fatal error of the idempotent producer, a message timeout). A new
  producer replaces it and the message is retried.

A name not in the table is retried if librdkafka calls it retriable or does
not say; a fatal error always rebuilds. The lane's retry budget bounds every
retry, so an error wrongly judged transient costs time, never events
unaccounted for.
"""

from __future__ import annotations

import enum
from typing import Protocol

__all__ = ["UNKNOWN_FATE", "VERDICTS", "KafkaErrorLike", "Verdict", "describe", "judge"]


class Verdict(enum.Enum):
    """What to do with a message whose delivery failed."""

    RETRY = "retry"
    REJECT = "reject"
    MISCONFIGURED = "misconfigured"
    REBUILD = "rebuild"


class KafkaErrorLike(Protocol):
    """The part of ``confluent_kafka.KafkaError`` this module reads."""

    def name(self) -> str:
        """The librdkafka name of the code, such as ``MSG_SIZE_TOO_LARGE``."""
        ...

    def str(self) -> str:
        """The human-readable message (the broker's, when it sent one)."""
        ...

    def fatal(self) -> bool:
        """Whether the producer instance is unusable after this error."""
        ...


_RETRY = Verdict.RETRY
_REJECT = Verdict.REJECT
_MISCONFIGURED = Verdict.MISCONFIGURED
_REBUILD = Verdict.REBUILD

VERDICTS: dict[str, Verdict] = {
    # Local (librdkafka) conditions: the message was not written, or not known to be.
    # A timed-out message leaves the idempotent producer unsure of its
    # sequence numbers, and a broker that lost its state (restarted without
    # storage) refuses the old producer id for good: start a new producer.
    "_MSG_TIMED_OUT": _REBUILD,
    "_TIMED_OUT": _RETRY,
    "_TIMED_OUT_QUEUE": _RETRY,
    "_TRANSPORT": _RETRY,
    "_ALL_BROKERS_DOWN": _RETRY,
    "_RESOLVE": _RETRY,
    "_QUEUE_FULL": _RETRY,
    "_PURGE_QUEUE": _RETRY,
    "_PURGE_INFLIGHT": _RETRY,
    "_RETRY": _RETRY,
    "_FAIL": _RETRY,
    "_ISR_INSUFF": _RETRY,
    "_WAIT_COORD": _RETRY,
    "_DESTROY": _RETRY,
    "_SSL": _RETRY,
    # Broker conditions that pass: leadership moves, replicas catch up, quotas reset.
    "INVALID_MSG": _RETRY,
    "LEADER_NOT_AVAILABLE": _RETRY,
    "NOT_LEADER_FOR_PARTITION": _RETRY,
    "REQUEST_TIMED_OUT": _RETRY,
    "BROKER_NOT_AVAILABLE": _RETRY,
    "REPLICA_NOT_AVAILABLE": _RETRY,
    "NETWORK_EXCEPTION": _RETRY,
    "NOT_ENOUGH_REPLICAS": _RETRY,
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND": _RETRY,
    "KAFKA_STORAGE_ERROR": _RETRY,
    "THROTTLING_QUOTA_EXCEEDED": _RETRY,
    "FENCED_LEADER_EPOCH": _RETRY,
    "UNKNOWN_LEADER_EPOCH": _RETRY,
    "CONCURRENT_TRANSACTIONS": _RETRY,
    "REBOOTSTRAP_REQUIRED": _RETRY,
    # The message can never be stored as it is.
    "MSG_SIZE_TOO_LARGE": _REJECT,
    "INVALID_MSG_SIZE": _REJECT,
    "RECORD_LIST_TOO_LARGE": _REJECT,
    "INVALID_RECORD": _REJECT,
    "INVALID_TIMESTAMP": _REJECT,
    "TOPIC_EXCEPTION": _REJECT,
    "UNSUPPORTED_FOR_MESSAGE_FORMAT": _REJECT,
    "POLICY_VIOLATION": _REJECT,
    "UNKNOWN_TOPIC_OR_PART": _REJECT,
    "UNKNOWN_TOPIC_ID": _REJECT,
    "_UNKNOWN_TOPIC": _REJECT,
    "_UNKNOWN_PARTITION": _REJECT,
    "_BAD_MSG": _REJECT,
    "_INVALID_ARG": _REJECT,
    # The sink cannot work until someone changes its configuration or grants.
    "TOPIC_AUTHORIZATION_FAILED": _MISCONFIGURED,
    "CLUSTER_AUTHORIZATION_FAILED": _MISCONFIGURED,
    "TRANSACTIONAL_ID_AUTHORIZATION_FAILED": _MISCONFIGURED,
    "SASL_AUTHENTICATION_FAILED": _MISCONFIGURED,
    "UNSUPPORTED_SASL_MECHANISM": _MISCONFIGURED,
    "ILLEGAL_SASL_STATE": _MISCONFIGURED,
    "UNACCEPTABLE_CREDENTIAL": _MISCONFIGURED,
    "SECURITY_DISABLED": _MISCONFIGURED,
    "_AUTHENTICATION": _MISCONFIGURED,
    "INVALID_REQUIRED_ACKS": _MISCONFIGURED,
    "INVALID_CONFIG": _MISCONFIGURED,
    "UNSUPPORTED_VERSION": _MISCONFIGURED,
    "UNSUPPORTED_COMPRESSION_TYPE": _MISCONFIGURED,
    "_UNSUPPORTED_FEATURE": _MISCONFIGURED,
    "_NOT_IMPLEMENTED": _MISCONFIGURED,
    "_INVALID_TYPE": _MISCONFIGURED,
    # The idempotent producer lost its state: a new producer starts a new sequence.
    "_FATAL": _REBUILD,
    "_FENCED": _REBUILD,
    "OUT_OF_ORDER_SEQUENCE_NUMBER": _REBUILD,
    "UNKNOWN_PRODUCER_ID": _REBUILD,
    "INVALID_PRODUCER_EPOCH": _REBUILD,
    "INVALID_PRODUCER_ID_MAPPING": _REBUILD,
    "PRODUCER_FENCED": _REBUILD,
}
"""The verdict for each librdkafka error name (see the module documentation)."""


UNKNOWN_FATE = frozenset(
    {
        "_PURGE_INFLIGHT",
        "_MSG_TIMED_OUT",
        "_TIMED_OUT",
        "_TRANSPORT",
        "REQUEST_TIMED_OUT",
        "NETWORK_EXCEPTION",
    }
)
"""Errors after which the message may have reached the broker all the same: a request
purged, timed out or cut while in flight. Events given up after one are ``unconfirmed``."""


def judge(error: KafkaErrorLike) -> Verdict:
    """Return what to do with a message that failed with `error`."""
    if error.fatal():
        return Verdict.REBUILD
    return VERDICTS.get(error.name(), Verdict.RETRY)


def describe(error: KafkaErrorLike) -> str:
    """Return ``NAME (message)`` for logs and errors, e.g. ``MSG_SIZE_TOO_LARGE (Broker: ...)``."""
    return f"{error.name()} ({error.str()})"
