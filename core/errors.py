"""The one error hierarchy services raise; the API maps it to JSON responses in one place."""

from __future__ import annotations


class RanklabError(Exception):
    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code

    def as_dict(self) -> dict[str, str]:
        body = {"detail": self.message, "code": self.code}
        if self.field:
            body["field"] = self.field
        return body


class InvalidInput(RanklabError):
    status_code = 400
    code = "invalid"


class NotAllowed(RanklabError):
    status_code = 403
    code = "forbidden"


class NotFound(RanklabError):
    status_code = 404
    code = "not_found"


class Conflict(RanklabError):
    status_code = 409
    code = "conflict"
