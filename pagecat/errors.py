"""The two kinds of failure the CLI tells apart.

UsageError is the user's to fix (bad config, missing path, unreachable scheduler): exit 2
with one line. StageError is a failure while working: exit 1 naming the stage and the cause.
"""


class UsageError(Exception):
    """Bad usage, config or path. The message is one line that names what to fix."""


class StageError(Exception):
    """A stage failed while working."""

    def __init__(self, stage: str, cause: str):
        super().__init__(f"stage {stage} failed: {cause}")
        self.stage = stage
        self.cause = cause
