"""The one exception type that the CLI turns into a single clear line."""


class ConfigError(ValueError):
    """A bad configuration or input, found before anything is trained or recorded.

    The message is one line: what was wrong, what was expected, and how to fix it.
    """


def require(condition: bool, message: str) -> None:
    """Raise ``ConfigError(message)`` unless ``condition``: the form every check takes."""
    if not condition:
        raise ConfigError(message)
