"""The Hydra configs of mia-bench, installed as the package ``benchmark.conf``.

The folder stays at the top of the checkout (``conf/``); ``setup.py`` maps it to
``benchmark.conf`` so that a wheel carries it and :mod:`benchmark.config.compose` finds it
wherever the package is installed. Nothing here is meant to be imported.
"""
