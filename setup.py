"""Packaging hook (the metadata is in pyproject.toml): ship the checkout's top-level
``templates/`` (the HTML report's jinja2 templates) inside the wheel as ``sshmr/templates/``,
next to every package under ``sshmr/``. tests/integration/test_report.py checks a built
wheel holds both."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["sshmr", "sshmr.*"]), "sshmr.templates"],
    package_dir={"sshmr.templates": "templates"},
    package_data={"sshmr": ["py.typed"], "sshmr.templates": ["*.j2"]},
)
