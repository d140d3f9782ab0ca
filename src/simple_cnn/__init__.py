"""Simple CNN: CIFAR-10 end to end, from HOG+SVM to a small CNN."""

__version__ = "0.1.0"
