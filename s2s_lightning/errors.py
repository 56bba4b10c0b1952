"""The one exception type for bad input: the CLI prints it as a single line and exits non-zero."""


class S2SError(Exception):
    """A problem with the user's input (config, data, checkpoint, storage), not a bug.

    The message must name the problem on one line; the CLI prints it without a traceback.
    """
