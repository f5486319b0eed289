"""The one exception type the CLI turns into a clean one-line message."""


class UserError(Exception):
    """Something the user can fix: a bad path, key, value or file.

    The message must name the file, key or value at fault and say what to do.
    The CLI prints it on one line and exits with code 2, without a traceback.
    """
