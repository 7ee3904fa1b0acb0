"""``python -m sshmr`` and the ``sshmr`` command: the CLI, with a Ctrl-C that lands while
its modules are still being imported answered like any other (one line, exit 130)."""

import sys


def run() -> None:
    try:
        from .cli import main
    except KeyboardInterrupt:
        sys.stderr.write("sshmr: interrupted\n")
        sys.exit(130)
    main(prog_name="sshmr")


if __name__ == "__main__":
    run()
