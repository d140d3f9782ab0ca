"""The project's own error type: one readable message that says what is wrong and how to fix it."""


class ConfigError(ValueError):
    """A parameter, file or input is wrong; the message names it and the fix."""


class DataError(ValueError):
    """Input data (an archive, an image folder, labels) is unusable; the message names it and the fix."""


class NonFiniteLossError(FloatingPointError):
    """The loss became inf or NaN; the message says when, at what LR, and in which layer.

    ``details`` holds the same facts for a program (``epoch``, ``step``: the global optimiser
    step, ``lr``, ``layer``), e.g. for a study that records a diverged run and goes on."""

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.details = details

    def __reduce__(self):  # keep the details across processes (ParallelRunner)
        return _rebuild_non_finite, (str(self), self.details)


def _rebuild_non_finite(message: str, details: dict) -> NonFiniteLossError:
    return NonFiniteLossError(message, **details)


class ConcurrentRunError(RuntimeError):
    """Another run holds a resource this run needs (the training checkpoint); the message
    names that run and what to do."""


class ClusterError(RuntimeError):
    """The Dask cluster cannot run the study (unreachable, without workers, or its workers
    cannot see the project's data); the message says what to do."""


class StudyIncompleteError(RuntimeError):
    """Some runs of a study failed while the others finished; the message lists each failed
    run with its error and how to re-run just those."""


class TrackingError(RuntimeError):
    """The MLflow store cannot take the run (unreachable, read-only, or written by another
    MLflow version); raised before any node runs, the message says what to do."""


class DistributedTrainingError(RuntimeError):
    """A training process of several failed or died; the message names its rank, what
    happened, and that the last complete checkpoint is kept."""
