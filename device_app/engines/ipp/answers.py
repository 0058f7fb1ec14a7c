"""What a printer's answers mean, in words for the panel and the log: why it refused a job,
its status message, and how a job ended. Pure functions of a decoded response (model.py)."""

from __future__ import annotations

from typing import Final

from device_app.engines.ipp import codec as ipp
from device_app.engines.ipp.model import GroupTag, JobState, Message, Status

REFUSALS: Final[dict[int, str]] = {
    Status.CLIENT_ERROR_DOCUMENT_FORMAT_NOT_SUPPORTED: "it does not take PDF documents",
    Status.CLIENT_ERROR_DOCUMENT_FORMAT_ERROR: "it could not read the document",
    Status.CLIENT_ERROR_REQUEST_ENTITY_TOO_LARGE: "the document is too large for it",
    Status.CLIENT_ERROR_NOT_AUTHENTICATED: "it wants a login this device does not have",
    Status.CLIENT_ERROR_NOT_AUTHORIZED: "it wants a login this device does not have",
    Status.CLIENT_ERROR_FORBIDDEN: "it does not let this device print",
    Status.SERVER_ERROR_NOT_ACCEPTING_JOBS: "it is not accepting jobs",
    Status.SERVER_ERROR_BUSY: "it is busy; try again shortly",
    Status.SERVER_ERROR_SERVICE_UNAVAILABLE: "it is not available; try again shortly",
    Status.SERVER_ERROR_TEMPORARY_ERROR: "of a temporary error; try again shortly",
}


def job_outcome(response: Message) -> tuple[bool, str] | None:
    """The end of a job as Get-Job-Attributes or Print-Job tells it: (printed?, why not),
    or None while it is not over."""
    raw = response.first(GroupTag.JOB, "job-state")
    try:
        job_state = JobState(raw) if isinstance(raw, int) else None
    except ValueError:
        job_state = None
    if job_state is None or not job_state.terminal:
        return None
    if job_state is JobState.COMPLETED:
        return True, ""
    reasons = [r for r in ipp.keywords(response.get(GroupTag.JOB, "job-state-reasons"))
               if r != "none"]
    message = response.first(GroupTag.JOB, "job-state-message")
    said = "; ".join(x for x in (message if isinstance(message, str) else "",
                                 ", ".join(reasons)) if x)
    said = f" ({said})" if said else ""
    if job_state is JobState.CANCELED:
        return False, f"the job was canceled at the printer{said}"
    return False, f"the printer aborted the job{said}"


def refusal(response: Message) -> str:
    """Why a printer refused a job, in words for the panel ("" if the status says it all)."""
    if response.code == Status.CLIENT_ERROR_ATTRIBUTES_OR_VALUES_NOT_SUPPORTED:
        # Which ones: the unsupported-attributes group lists them (RFC 8011 4.1.7).
        group = response.group(GroupTag.UNSUPPORTED)
        names = [a.name for a in group.attributes] if group is not None else []
        if "document-format" in names:
            return REFUSALS[Status.CLIENT_ERROR_DOCUMENT_FORMAT_NOT_SUPPORTED]
        if names:
            return f"it does not support {', '.join(names)}"
    return REFUSALS.get(response.code, "")


def status_message(response: Message) -> str:
    text = response.first(GroupTag.OPERATION, "status-message")
    return f": {text}" if isinstance(text, str) and text else ""
