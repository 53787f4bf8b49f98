"""The one error type a user of lrbench sees for bad input."""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad user input: names the field and says what is allowed.

    The CLI turns it into one line on stderr and exit code 2.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")
