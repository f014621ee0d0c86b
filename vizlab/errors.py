"""The one error type users can cause. The CLI prints its message on one line, exit status 2."""


class VizlabError(Exception):
    """A problem with the user's input or environment (not a bug): reported without traceback."""

    exit_code = 2
