"""The error types a user can act on. Library modules raise UserError's subclasses (DatasetError,
TrainingError, BackendError, ModelFileError, CommandError, ...); the command line prints any of them
as one line without a traceback, and the node turns them into a start-up message."""


class UserError(Exception):
    """A problem the user can fix (a bad path, an empty dataset, a wrong setting); the message says how."""


class CommandError(UserError):
    """A command-line argument the user can fix (bad path, unknown option value): printed as one line."""


class ModelFileError(UserError):
    """A model file that cannot be used; the message names the file and the fix."""
