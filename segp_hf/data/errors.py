"""The one error type of the data package: a dataset, class order or split the user has to fix (cli.py turns it
into a one-line message and exit code 2)."""


class DataError(ValueError):
    """A dataset, class order or split the user has to fix."""
