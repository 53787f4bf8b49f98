"""The one error type a user of lrbench sees for bad input."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad user input: names the field and says what is allowed.

    ``field`` is the library's name for the input (a keyword argument or config field such as
    ``resume`` or ``max_memory``); the CLI prints it as its flag (``--resume``), in one line
    on stderr with exit code 2.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
