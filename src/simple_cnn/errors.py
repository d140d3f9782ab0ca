"""The project's own error type: one readable message that says what is wrong and how to fix it."""


class ConfigError(ValueError):
    """A parameter, file or input is wrong; the message names it and the fix."""


class DataError(ValueError):
    """Input data (an archive, an image folder, labels) is unusable; the message names it and the fix."""


class NonFiniteLossError(FloatingPointError):
    """The loss became inf or NaN; the message says when, at what LR, and in which layer."""


class ConcurrentRunError(RuntimeError):
    """Another run holds a resource this run needs (the training checkpoint); the message
    names that run and what to do."""
