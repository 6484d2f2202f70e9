"""The one exception type the command line turns into a clear message and a non-zero exit."""


class DCMError(Exception):
    """A user-facing error: bad config value, missing or corrupt file, unusable prompt."""
