"""``python -m benchmark.cli``: the same as the ``mia-bench`` console script."""

from benchmark.cli.main import main

main()
