"""Training: configuration (``config.py``, light), the device (``device.py``), the LR schedule,
the loop with checkpoints, numeric diagnostics, and the nodes' core (``run.py``)."""
