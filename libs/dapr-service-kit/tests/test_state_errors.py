"""Telling a lost version race from an outage, on errors shaped exactly as daprd 1.18
with state.redis and state.postgresql v2 returns them (details and metadata copied
from a real sidecar)."""

import grpc
from dapr.clients.exceptions import DaprInternalError
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc.aio import AioRpcError, Metadata

from dapr_service_kit.state_errors import describe, is_version_conflict

SCRIPT = "script: d908b9553add63a82e03589b5c6d01a7654ef0f2"
FIRST_WRITE_REFUSED = (
    "failed saving state in state store statestore: failed to set key task-api||k: "
    f"ERR user_script:14: failed to set key task-api||k {SCRIPT}, on @user_script:14."
)
OUT_OF_MEMORY = (
    "failed saving state in state store statestore: failed to set key task-api||k: "
    f"OOM command not allowed when used memory > 'maxmemory'. {SCRIPT}, on @user_script:8."
)


def sdk_error(code: grpc.StatusCode, details: str, reason: str = "ERR_STATE_SAVE") -> Exception:
    """What the SDK's save_state raises: DaprInternalError caused by the gRPC error."""
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="dapr.io"))
    status = status_pb2.Status(code=code.value[0], message=details, details=[info])
    rpc = AioRpcError(
        code, Metadata(), Metadata(("grpc-status-details-bin", status.SerializeToString())), details
    )
    try:
        raise DaprInternalError(details) from rpc
    except DaprInternalError as error:
        return error


def test_state_redis_refusing_a_first_write_is_a_conflict() -> None:
    assert is_version_conflict(sdk_error(grpc.StatusCode.INTERNAL, FIRST_WRITE_REFUSED))


def test_state_postgresql_refusing_a_first_write_is_a_conflict() -> None:
    refused = "failed saving state in state store statestore: no item was updated"
    assert is_version_conflict(sdk_error(grpc.StatusCode.INTERNAL, refused))
    # The same words inside another failure are not its refusal.
    down = "failed saving state in state store statestore: dial tcp: no item was updated: eof"
    assert not is_version_conflict(sdk_error(grpc.StatusCode.INTERNAL, down))


ETAG_REFUSED = (
    "failed saving state in state store statestore: possible etag mismatch. error from "
    f"state store: ERR user_script:14: failed to set key task-api||k {SCRIPT}, on @user_script:14."
)
ETAG_WRITE_OUT_OF_MEMORY = (
    "failed saving state in state store statestore: possible etag mismatch. error from "
    f"state store: OOM command not allowed when used memory > 'maxmemory'. {SCRIPT}."
)


def test_an_etag_mismatch_is_a_conflict() -> None:
    assert is_version_conflict(sdk_error(grpc.StatusCode.ABORTED, ETAG_REFUSED))
    assert is_version_conflict(sdk_error(grpc.StatusCode.ABORTED, "possible etag mismatch"))


def test_a_conditional_write_refused_for_lack_of_memory_is_an_outage() -> None:
    """state.redis reports any failure of a write with an ETag as a mismatch."""
    assert not is_version_conflict(sdk_error(grpc.StatusCode.ABORTED, ETAG_WRITE_OUT_OF_MEMORY))


def test_redis_out_of_memory_is_an_outage_not_a_conflict() -> None:
    assert not is_version_conflict(sdk_error(grpc.StatusCode.INTERNAL, OUT_OF_MEMORY))


def test_another_reason_is_an_outage() -> None:
    error = sdk_error(grpc.StatusCode.INTERNAL, FIRST_WRITE_REFUSED, reason="ERR_STATE_GET")
    assert not is_version_conflict(error)
    assert not is_version_conflict(sdk_error(grpc.StatusCode.UNAVAILABLE, "connection refused"))


def test_a_failed_call_is_described_by_its_status_or_else_its_message() -> None:
    """Without a status the log used to say "failed (None)"."""
    assert describe(sdk_error(grpc.StatusCode.UNAVAILABLE, "connection refused")) == "UNAVAILABLE"
    refused = DaprInternalError("fail to invoke, id: notification-service, err: no address")
    assert describe(refused) == "fail to invoke, id: notification-service, err: no address"
