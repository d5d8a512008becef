"""`python -m judge`: the same entry point as the `judge` console script (`judge.cli.main`)."""

from judge.cli import main

if __name__ == "__main__":
    main()
