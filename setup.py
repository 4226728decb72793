"""Packaging beyond what ``pyproject.toml`` can say: the top-level ``conf/`` folder, shipped as
the package ``benchmark.conf`` (a mapping that ``packages.find`` cannot express)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["benchmark*", "attacks*", "defenses*"]), "benchmark.conf"],
    package_dir={"benchmark.conf": "conf"},
)
