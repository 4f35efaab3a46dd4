"""The one error the source layer raises, naming the field a user must fix."""

from __future__ import annotations


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
