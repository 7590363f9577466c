"""The one exception type for bad input a user can fix.

The CLI prints it as a single line (`genlab: error: ...`) and exits with code 2. Messages name
the file, field or argument and say what was expected and what was found.
"""


class GenlabError(ValueError):
    """Bad input at a boundary: a file, an argument, a config field, a checkpoint."""
