"""The one exception the client raises for an answer that is not a success."""

from __future__ import annotations

from typing import Any, Dict, Optional


class PrivalyticsError(Exception):
    """An error answer of the API.

    status is the HTTP status; code is the server's error code (invalid,
    unauthorized, forbidden, budget, not_found, conflict, too_large,
    unsupported, rate_limited, unavailable, internal), or "http" when the body
    was not the API's error shape; message says what to change; details holds
    the structured part (for a budget refusal: what is needed and what remains);
    request_id matches the server's logs.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Optional[Dict[str, Any]] = None,
        request_id: str = "",
        retry_after: Optional[float] = None,
    ) -> None:
        text = f"{status} {code}: {message}"
        if request_id:
            text += f" (request {request_id})"
        super().__init__(text)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.request_id = request_id
        self.retry_after = retry_after
