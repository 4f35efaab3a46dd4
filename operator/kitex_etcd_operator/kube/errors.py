"""The one error the source layer raises, naming the field a user must fix."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class SpecError(ValueError):
    """A KitexService or pod annotation the operator cannot act on.

    ``field`` is a JSON path as ``kubectl explain`` shows it (``spec.port``,
    ``metadata.annotations[kitex.cloudwego.io/port]``): it ends up in an Event
    and a status condition, where the user must see at once what to edit.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[type[SpecError], tuple[str, str]]:
        return (SpecError, (self.field, self.message))


def unexpected(at: str, what: str, exc: Exception) -> SpecError:
    """An exception other than ``SpecError`` met reading one object, as that object's error.

    It is a bug, but left to escape it would stop the watch of every tenant's
    objects, and the relist would meet the same object and stop it again: the
    object's owner gets an error where they look, the traceback goes to the log.
    """
    log.error("Reading %s failed unexpectedly; reported as its error", what, exc_info=exc)
    return SpecError(at, f"the operator could not read it ({type(exc).__name__}); "
                         "its log has the details")
