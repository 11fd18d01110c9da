class CommandError(Exception):
    """An error the user can fix (bad path, empty dataset, ...): printed as one line, no traceback."""
