"""NetSuite-shaped error answers (reference §4.1): ``o:errorDetails`` with code, detail and path."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

ERROR_MEDIA_TYPE = "application/vnd.oracle.resource+json; type=error"
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 409: "Conflict", 415: "Unsupported Media Type",
          429: "Too Many Requests", 500: "Internal Server Error"}
TYPES = {400: "15.5.1", 401: "15.5.2", 403: "15.5.4", 404: "15.5.5", 405: "15.5.6", 409: "15.5.10",
         415: "15.5.16", 500: "15.6.1"}
INVALID_LOGIN_DETAIL = ("Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI "
                        "at Setup > Users/Roles > User Management > View Login Audit Trail.")


class NsError(Exception):
    def __init__(self, status: int, code: str, detail: str, *, path: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.path = path
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.detail, path=self.path, headers=self.headers)


def error_response(status: int, code: str, detail: str, *, path: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    section = TYPES.get(status)
    type_url = (f"https://www.rfc-editor.org/rfc/rfc9110.html#section-{section}" if section
                else "https://www.rfc-editor.org/rfc/rfc6585.html#section-4")
    item: dict[str, Any] = {"detail": detail, "o:errorCode": code}
    if path:
        item["o:errorPath"] = path
    body = {"type": type_url, "title": TITLES.get(status, "Error"), "status": status, "o:errorDetails": [item]}
    return JSONResponse(body, status_code=status, headers=headers, media_type=ERROR_MEDIA_TYPE)


def not_found(detail: str = "The record instance does not exist. Provide a valid record instance ID.") -> NsError:
    return NsError(404, "NONEXISTENT_ID", detail)


def invalid_value(field: str, value: Any, path: str | None = None) -> NsError:
    return NsError(400, "INVALID_CONTENT",
                   f"Error while accessing a resource. You have entered an Invalid Field Value {value} for "
                   f"the following field: {field}", path=path or field)
