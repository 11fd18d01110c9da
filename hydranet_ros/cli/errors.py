from hydranet_ros.errors import UserError


class CommandError(UserError):
    """A command-line argument the user can fix (bad path, unknown option value): printed as one line."""
