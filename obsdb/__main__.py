"""``python -m obsdb``: the ``obsdb`` command, for an environment whose scripts are not on PATH."""

from obsdb.cli.app import main

if __name__ == "__main__":  # pragma: no cover - run as a module
    main()
