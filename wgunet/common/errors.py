"""The error every module raises for input a user can fix; the entry points print it as one line."""


class UserError(Exception):
    """Input that cannot be used (config, data, checkpoint, run state); the message names the problem and the fix."""


class ReplicatedError(UserError):
    """The main process's error, raised again on the other processes so that they stop too (printed once)."""
