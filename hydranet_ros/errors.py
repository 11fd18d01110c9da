"""The one error type a user can act on. Library modules raise their own subclasses (DatasetError,
TrainingError, BackendError, ModelFileError, ...); the command line prints any of them as one line
without a traceback, and the node turns them into a start-up message."""


class UserError(Exception):
    """A problem the user can fix (a bad path, an empty dataset, a wrong setting); the message says how."""
