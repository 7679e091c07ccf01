"""Errors a user can act on: one line, naming the file, feature or field.

The CLI prints ``str(err)`` and exits with ``err.exit_code``; a traceback only
with ``--debug``.
"""


class WeipianError(Exception):
    """Base of all errors that reach the user as one line."""

    exit_code = 1


class ConfigError(WeipianError):
    """county.toml is missing, unreadable or inconsistent."""

    exit_code = 2


class DataSourceError(WeipianError):
    """A whole input layer cannot be used (missing file, unknown kind, missing field)."""

    exit_code = 2


class DatabaseError(WeipianError):
    """The database cannot be reached or set up."""

    exit_code = 3
