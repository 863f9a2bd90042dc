"""The one exception type for bad user input: the CLI prints it as a single line and exits non-zero."""


class SeerError(Exception):
    """A problem with the user's input (file, line or key, and what was expected), not a bug in seer.

    The message must be one line that names where the problem is, e.g.
    ``data/train.jsonl:12: field 'category': expected one of [...], got 'colour'``.
    """
