"""Developer benchmarks (``python -m benchmark.bench.<name>``): speed and attack strength. They
print ratios and a JSON last line; nothing at run time imports them."""
