"""libical, the C library behind Evolution, KDE and many servers, called through ctypes to check
calendars the way those clients read them (Debian's ``libical3``).

``problems(data)`` parses the calendar, applies the restrictions of its METHOD (RFC 5546; none without
METHOD) and returns every error libical notes in it (its ``X-LIC-ERROR`` properties). Without the
library, ``require()`` skips the test, or fails it when the ``CI`` environment variable is set, as the
browser tests do without Chromium.
"""

import ctypes
import ctypes.util
import os
import re

import pytest

_lib = None


def load():
    """The library, or None if it is not installed."""
    global _lib
    if _lib is None:
        for name in ("libical.so.3", ctypes.util.find_library("ical")):
            if not name:
                continue
            try:
                lib = ctypes.CDLL(name)
            except OSError:
                continue
            lib.icalparser_parse_string.restype = ctypes.c_void_p
            lib.icalparser_parse_string.argtypes = [ctypes.c_char_p]
            lib.icalrestriction_check.restype = ctypes.c_int
            lib.icalrestriction_check.argtypes = [ctypes.c_void_p]
            lib.icalcomponent_count_errors.restype = ctypes.c_int
            lib.icalcomponent_count_errors.argtypes = [ctypes.c_void_p]
            lib.icalcomponent_as_ical_string_r.restype = ctypes.c_void_p  # caller frees
            lib.icalcomponent_as_ical_string_r.argtypes = [ctypes.c_void_p]
            lib.icalcomponent_free.argtypes = [ctypes.c_void_p]
            lib.icalmemory_free_buffer.argtypes = [ctypes.c_void_p]
            _lib = lib
            break
    return _lib


def require():
    """The library, or skip (fail with ``CI`` set) saying how to install it."""
    lib = load()
    if lib is None:
        reason = "libical is not installed (apt-get install libical3)"
        if os.environ.get("CI"):
            pytest.fail(f"libical tests cannot run: {reason}", pytrace=False)
        pytest.skip(f"libical tests skipped: {reason}")
    return lib


def problems(data: bytes) -> list[str]:
    """Every error libical finds in the calendar ``data``: parse errors and broken restrictions."""
    lib = require()
    component = lib.icalparser_parse_string(data)
    if not component:
        return ["libical could not parse the calendar at all"]
    try:
        lib.icalrestriction_check(component)
        count = lib.icalcomponent_count_errors(component)
        pointer = lib.icalcomponent_as_ical_string_r(component)
        try:
            text = ctypes.string_at(pointer).decode("utf-8", "replace")
        finally:
            lib.icalmemory_free_buffer(pointer)
    finally:
        lib.icalcomponent_free(component)
    unfolded = re.sub(r"\r?\n[ \t]", "", text)
    found = [line for line in unfolded.splitlines() if line.upper().startswith("X-LIC-")]
    if count and not found:
        found = [f"{count} errors"]
    return found
