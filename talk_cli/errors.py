"""Error types. Every error a user can cause is a `TalkError`: the CLI prints its
message and exits with code 2 instead of showing a traceback."""


class TalkError(Exception):
    """A problem with the user's input or settings, with a message that names it."""


class DataError(TalkError):
    """A dataset folder that is missing, malformed or inconsistent."""


class SettingsError(TalkError):
    """An invalid option value or combination of options."""


class ModelError(TalkError):
    """A language model that cannot be found or loaded."""


class OutputError(TalkError):
    """An output that cannot be written where the user asked (a read-only folder, a parent that is a file)."""
