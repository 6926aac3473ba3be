"""``python -m hc``: the same entry point as the ``hc`` console script."""

from hc.cli import main

if __name__ == "__main__":
    main()
