"""The API's one table of errors: every failure becomes a JSON error with the right status."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from firmware.station.station import StationError
from firmware.store import StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ApiError:
    status: int
    message: str


API_ERRORS: dict[str, ApiError] = {
    "bad_json": ApiError(400, "The request body is not valid JSON."),
    "bad_request": ApiError(400, "The request is not valid."),
    "unauthorized": ApiError(401, "This needs the operator token (Authorization: Bearer ...)."),
    "forbidden": ApiError(403, "You may not do this."),
    "callback_refused": ApiError(
        401, "The callback is not signed by the payment provider, is too old, or was received."
    ),
    "card_refused": ApiError(
        400,
        "This station never takes card numbers: pay on the payment provider's page "
        "(the phone page's payment button opens it).",
    ),
    "not_found": ApiError(404, "Not found."),
    "body_timeout": ApiError(408, "The request body did not arrive in time."),
    "conflict": ApiError(409, "The port is not in a state that allows this."),
    "too_large": ApiError(413, "The request body is too large (64 KiB at most)."),
    "unavailable": ApiError(503, "The station is not ready."),
    "provider_unavailable": ApiError(503, "The payment provider cannot be reached; try again."),
    "busy": ApiError(503, "The station is serving as many clients as it can; try again shortly."),
    "records_unavailable": ApiError(
        503, "The station's records cannot be read right now; charging is not affected."
    ),
}

RETRY_AFTER_S = {"busy": 10, "records_unavailable": 5, "provider_unavailable": 10}


def error_response(code: str, message: str | None = None) -> web.Response:
    err = API_ERRORS[code]
    retry = RETRY_AFTER_S.get(code)
    return web.json_response(
        {"error": {"code": code, "message": message or err.message}},
        status=err.status,
        headers={"Retry-After": str(retry)} if retry is not None else None,
    )


class ApiFailure(Exception):
    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(message or API_ERRORS[code].message)
        self.code = code
        self.message = message


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a JSON error with the right status; nothing else escapes."""
    try:
        return await handler(request)
    except ApiFailure as exc:
        return error_response(exc.code, exc.message)
    except StationError as exc:
        code = {404: "not_found", 400: "bad_request"}.get(exc.status, "conflict")
        return error_response(code, str(exc))
    except web.HTTPRequestEntityTooLarge:
        return error_response("too_large")
    except StoreError as exc:
        return error_response("records_unavailable", f"The records cannot be read: {exc}.")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("API handler failed: %s %s", request.method, request.path)
        return web.json_response(
            {"error": {"code": "internal", "message": "The station could not do this."}},
            status=500,
        )
