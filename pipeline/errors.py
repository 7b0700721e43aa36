"""The one exception type users see: a paragraph saying what is wrong, where, and the fix."""


class PodiumError(Exception):
    """A problem with the user's input or configuration, reported without a traceback."""
