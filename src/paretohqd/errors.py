"""One exception type for problems the user can fix; the CLI prints its message and exits with code 2."""


class UserError(Exception):
    """Bad input or configuration: the message is one sentence naming what is wrong and where."""

    exit_code = 2
