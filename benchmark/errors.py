"""The one exception type that the CLI turns into a single clear line."""


class ConfigError(ValueError):
    """A bad configuration or input, found before anything is trained or recorded.

    The message is one line: what was wrong, what was expected, and how to fix it.
    """
