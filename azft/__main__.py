"""``python -m azft``: the same as the ``azft`` command."""

from azft.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
