"""SAP Gateway's JSON error body, so clients are tested against the shape SAP really sends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from starlette.responses import JSONResponse

SERVICE_ID = "API_SALES_ORDER_SRV"
GENERIC = "SY/530"  # SAP's free-text message; used where the real T100 code is not known
NOT_FOUND = "/IWBEP/CM_MGW_RT/020"


class ODataError(Exception):
    def __init__(self, status: int, message: str, *, code: str = GENERIC, target: str = "",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.target = target
        self.headers = headers or {}


def error_body(code: str, message: str, *, target: str = "") -> dict[str, object]:
    return {"error": {
        "code": code,
        "message": {"lang": "en", "value": message},
        "innererror": {
            "application": {"component_id": "SD-SLS-API", "service_namespace": "/SAP/",
                            "service_id": SERVICE_ID, "service_version": "0001"},
            "transactionid": uuid.uuid4().hex.upper(),
            "timestamp": datetime.now(UTC).strftime("%Y%m%d%H%M%S.%f")[:22],
            "Error_Resolution": {
                "SAP_Transaction": "Run transaction /IWFND/ERROR_LOG on SAP Gateway hub system",
                "SAP_Note": "See SAP Note 1797736 for error analysis"},
            "errordetails": [{"code": code, "message": message, "propertyref": target, "severity": "error",
                              "target": target}],
        },
    }}


def error_response(exc: ODataError) -> JSONResponse:
    return JSONResponse(error_body(exc.code, exc.message, target=exc.target), status_code=exc.status,
                        headers=exc.headers)
