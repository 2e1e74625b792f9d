"""Kubernetes API errors, rendered as `Status` bodies that clients understand.

The official client raises `ApiException(status=...)` and kopf raises `APIError` subclasses by the
HTTP code and reads `reason`/`message`/`details` from the body, so the body shape matters.
"""

from __future__ import annotations

from typing import Any

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """An error answered to the client as a `kind: Status` body with the given HTTP code."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(kind: str, group: str, name: str | None) -> dict[str, Any]:
    return {"name": name or "", "group": group, "kind": kind}


def not_found(plural: str, group: str, name: str | None) -> ApiError:
    where = f"{plural}.{group}" if group else plural
    return ApiError(404, f'{where} "{name}" not found', details=_details(plural, group, name))


def already_exists(plural: str, group: str, name: str) -> ApiError:
    where = f"{plural}.{group}" if group else plural
    return ApiError(
        409,
        f'{where} "{name}" already exists',
        reason="AlreadyExists",
        details=_details(plural, group, name),
    )


def conflict(plural: str, group: str, name: str) -> ApiError:
    where = f"{plural}.{group}" if group else plural
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {where} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        details=_details(plural, group, name),
    )


def invalid(kind: str, group: str, name: str, causes: list[dict[str, str]]) -> ApiError:
    """422 with one cause per field, formatted like the real API server's message."""
    what = f"{kind}.{group}" if group else kind
    summary = "; ".join(
        f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes
    )
    details = dict(_details(kind, group, name), causes=causes)
    return ApiError(422, f'{what} "{name}" is invalid: {summary}', details=details)


def cause(field: str, message: str, reason: str = "FieldValueInvalid") -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def gone(message: str) -> ApiError:
    return ApiError(410, message, reason="Expired")
