"""`python -m lakehouse`: the same command as the `lakehouse` console script."""

from lakehouse.cli import main

if __name__ == "__main__":
    main()
