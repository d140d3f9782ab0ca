"""Models: ``SimpleCNN`` (``simple_cnn.py``) and its configuration (``config.py``, light)."""
