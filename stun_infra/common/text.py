"""Text from config, stack files or the network, made safe to show on one terminal line."""

from __future__ import annotations

import unicodedata

MAX_SHOWN = 200  # characters of a value quoted in a message


def control_character(text: str) -> str | None:
    """The first character that breaks a line or is invisible (control, format, line separator)."""
    return next((c for c in text if unicodedata.category(c)[0] == "C" or c in "\u2028\u2029"), None)


def printable(text: str) -> str:
    """`text` safe for one terminal line: control, format and line-separator characters
    as \\uXXXX escapes, cut to MAX_SHOWN characters."""
    out = "".join(f"\\u{ord(c):04x}" if unicodedata.category(c)[0] == "C" or c in "\u2028\u2029" else c
                  for c in text[:MAX_SHOWN])
    return out + ("..." if len(text) > MAX_SHOWN else "")
