"""The one exception type users see: a paragraph saying what is wrong, where, and the fix."""


class PodiumError(Exception):
    """A problem with the user's input or configuration, reported without a traceback."""


def first_line(exc: BaseException) -> str:
    """An exception's message, first line only: enough to name the cause inside a one-paragraph error."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
