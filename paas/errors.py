"""The one exception type front ends turn into a one-line error and a non-zero exit."""


class PaasError(Exception):
    """A user-facing error: its message is shown as is, without a traceback."""


class NotFound(PaasError):
    """Something named by the user does not exist."""


class Conflict(PaasError):
    """The request clashes with the current state (name taken, deploy running, ...)."""


class PermissionDenied(PaasError):
    """The caller may not do this."""


class QuotaExceeded(PaasError):
    """The change would pass an operator's ceiling or the owner's quota; nothing was changed."""


class Unauthenticated(PaasError):
    """No valid session, token or password."""


class Throttled(PaasError):
    """Too many failed attempts; try again later."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
