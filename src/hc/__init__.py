"""hc: the Harness Artifact Registry CLI, in Python."""

__version__ = "0.1.0"
