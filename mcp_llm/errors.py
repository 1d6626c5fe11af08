"""Errors the caller can act on. Tools turn them into MCP tool errors (isError) with the message as is."""


class InputError(ValueError):
    """The request must change; the message says what to change."""


class Unavailable(RuntimeError):
    """The engine cannot take the request now (starting, draining, stopped); retry later."""


class Retryable(Unavailable):
    """The request was cut off for a passing reason (a model swap, a remote server gone); sending it again is safe."""


class Busy(Unavailable):
    """Too many requests in flight (for this client or in total); retry when some have finished."""
