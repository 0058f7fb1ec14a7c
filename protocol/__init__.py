"""mfdkit's MQTT contract v1: topics, messages, codec and error codes. Pure: no I/O."""

from protocol.errors import ErrorCode, MfdError, ProtocolError, RemoteError
from protocol.messages import (
    Ack,
    Associate,
    DeleteJobs,
    DeviceStatus,
    DocumentChunk,
    FetchDocument,
    Identify,
    IdentifyResult,
    JobFailed,
    JobList,
    JobPrinted,
    JobSummary,
    ListJobs,
    Logout,
    Message,
    Release,
    ReleasedJob,
    ReleaseResult,
    Request,
    Result,
    decode_request,
    decode_response,
    decode_status,
    encode,
    encode_error,
    encode_result,
    is_mutating,
    status_supersedes,
)

__all__ = [
    "Ack", "Associate", "DeleteJobs", "DeviceStatus", "DocumentChunk", "ErrorCode",
    "FetchDocument", "Identify", "IdentifyResult", "JobFailed", "JobList", "JobPrinted",
    "JobSummary", "ListJobs", "Logout", "Message", "MfdError", "ProtocolError", "Release",
    "ReleaseResult", "ReleasedJob", "RemoteError", "Request", "Result", "decode_request",
    "decode_response", "decode_status", "encode", "encode_error", "encode_result", "is_mutating",
    "status_supersedes",
]
