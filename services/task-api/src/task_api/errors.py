"""Domain errors. `main.ERRORS` maps each to its status code."""


class TaskNotFound(Exception):
    pass


class TaskGone(Exception):
    """A retried create whose task has been deleted since: it is not created again."""


class PreconditionFailed(Exception):
    """The client's If-Match names a version that is no longer current."""


class TaskBusy(Exception):
    """Another writer kept the task locked for longer than we were willing to wait."""


class InvalidCursor(Exception):
    pass


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was first used with a different request body."""
