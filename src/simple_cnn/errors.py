"""The project's own error type: one readable message that says what is wrong and how to fix it."""


class ConfigError(ValueError):
    """A parameter, file or input is wrong; the message names it and the fix."""


class DataError(ValueError):
    """Input data (an archive, an image folder, labels) is unusable; the message names it and the fix."""
