"""The one way animegan tells the user things; tqdm and the standard library only, so it is cheap to import.

Messages (progress notes, warnings, errors) go to stderr; stdout carries only a command's real output
(metric lines, `config show`, the paths it wrote), so that it can be piped. Both go through tqdm.write:
a progress bar being drawn moves below the line instead of being torn by it.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def say(text: str, output: bool = False, end: str = "\n") -> None:
    """Tell the user `text`: a message on stderr, or with `output` a result on stdout."""
    # Looked up at each call, not bound at import: click's test runner and pytest swap the streams.
    tqdm.write(text, file=sys.stdout if output else sys.stderr, end=end)
