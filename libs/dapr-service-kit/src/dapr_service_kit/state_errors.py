"""What a failed Dapr state write means, read from the error Dapr returns.

A lost optimistic-concurrency race must become a retry or a 409; anything else (the
store out of memory, read-only, loading, unreachable) is an outage: 503 with
Retry-After. Neither status tells it alone with state.redis (and a refused first write
is INTERNAL with state.postgresql v2 too):
- a first-write whose key exists is refused inside its Lua script, and Dapr passes that
  on as INTERNAL with the generic reason ERR_STATE_SAVE, exactly like out of memory;
- a write with an ETag that fails for any reason, out of memory included, is reported
  as an ETag mismatch (ABORTED, "possible etag mismatch. error from state store: ...").
What tells them apart is the store's own message inside: the script's refusal.
"""

import re

import grpc
from google.rpc import error_details_pb2, status_pb2

SAVE_FAILED_REASON = "ERR_STATE_SAVE"
# How each store refuses a first write to a key that exists, as Dapr quotes it:
# - state.redis' set script: `return redis.error_reply("failed to set key " .. KEYS[1])`,
#   which Redis reports as "ERR user_script:<line>: failed to set key <key> script: ...";
# - state.postgresql v2: its upsert that updates only an expired row touched no row,
#   reported as a plain "no item was updated" (not as an ETag error), the store's whole
#   message. Without first-write that upsert always touches its row.
_FIRST_WRITE_REFUSAL = re.compile(
    r"ERR user_script:\d+: failed to set key |^failed saving state in state store [^:]+: "
    r"no item was updated$"
)
# How Dapr quotes the store's own error inside an ETag mismatch.
_STORE_ERROR = "error from state store:"


def _rpc_error(error: BaseException) -> grpc.RpcError | None:
    """The gRPC error behind an SDK error: DaprGrpcError is one, save_state wraps it in
    DaprInternalError with the original as its cause."""
    for candidate in (error, error.__cause__):
        if isinstance(candidate, grpc.RpcError):
            return candidate
    return None


def status_of(error: BaseException) -> grpc.StatusCode | None:
    for candidate in (error, error.__cause__):
        code = getattr(candidate, "code", None)
        if callable(code):
            status = code()
            if isinstance(status, grpc.StatusCode):
                return status
    return None


def describe(error: BaseException) -> str:
    """A short account of a failed sidecar call for a log line: its gRPC status, or
    what the error says when it has none (e.g. an invocation the sidecar refused)."""
    status = status_of(error)
    if status is not None:
        return str(status.name)
    return (str(error) or type(error).__name__)[:500]


def error_reason(error: BaseException) -> str | None:
    """The reason of the google.rpc.ErrorInfo Dapr attaches to its errors, if any."""
    rpc = _rpc_error(error)
    metadata = getattr(rpc, "trailing_metadata", None)
    pairs = metadata() if callable(metadata) else None
    for name, value in pairs or ():
        if name == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return str(info.reason)
    return None


def is_version_conflict(error: BaseException) -> bool:
    """Whether a failed save lost a race on the key's version (not an outage)."""
    status = status_of(error)
    if status not in (grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL):
        return False
    if status == grpc.StatusCode.INTERNAL and error_reason(error) != SAVE_FAILED_REASON:
        return False
    rpc = _rpc_error(error)
    details = getattr(rpc, "details", None)
    message = str(details() if callable(details) else "") or str(error)
    if _FIRST_WRITE_REFUSAL.search(message):
        return True
    # INTERNAL is a conflict only as that refusal. ABORTED is Dapr's ETag mismatch, a
    # conflict unless the store says it failed for another reason.
    return status == grpc.StatusCode.ABORTED and _STORE_ERROR not in message
