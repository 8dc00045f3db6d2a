"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """A problem with the user's input or environment, with the fix in the message.

    The message is one line: what is wrong, then what to do about it.
    """


class ConfigError(UserError):
    """An override, key, group or value that does not fit the config schema."""


class DataError(UserError):
    """A dataset root, file or image that is missing or unreadable."""


class ModelError(UserError):
    """Model weights that cannot be found or loaded."""
