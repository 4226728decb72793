"""mia-bench: a benchmark harness for privacy defenses against membership inference."""

__version__ = "0.1.0"
