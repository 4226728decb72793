"""Presenting results: the end-of-run summary, figures, documents and the ``mia-report`` command."""
