"""Image sources (CIFAR-10 binary archive, image folders, synthetic patterns) and splits."""
