"""``python -m sshmr`` is the ``sshmr`` command."""

from .cli import main

main(prog_name="sshmr")
