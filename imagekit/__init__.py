"""imagekit: build reproducible PyTorch GPU images from a declarative matrix, and prove they work."""

__version__ = "0.1.0"
