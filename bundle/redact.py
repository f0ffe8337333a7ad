"""Credentials out of every line we write: URIs' userinfo and password-like query parts.

A tracking URI may carry a password (`http://user:secret@mlflow:5000`), and MLflow repeats the URI
verbatim in its errors ("API request to http://user:secret@... failed"), which the loader logs and
readiness answers used to quote. `redact` masks them in any text; `install` makes every log record of
this process (ours, MLflow's, urllib3's, kserve's) go through it, tracebacks included, so no handler
or formatter can write a password. The serving side's entry points (the predictor, the storage
initializer) install it at start.
"""

from __future__ import annotations

import logging
import re
import traceback

MASK = "***"
# scheme://userinfo@ : everything between `//` and the last `@` before the host's end (a password
# may hold an unescaped `@`).
USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s'\"]*@")
# ?password=..., &token=..., ;api_key=... (also in a URI's fragment or a form body)
SECRET_PARAM = re.compile(
    r"(?P<key>(?:^|[?&;#\s])[\w.-]*(?:passw(?:or)?d|pwd|secret|token|api[_-]?key|access[_-]?key|"
    r"credential|signature|auth)[\w.-]*=)[^&;#\s'\"]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with every URI's userinfo and every password-like `key=value` value masked."""
    if "@" not in text and "=" not in text:  # the usual line: nothing to look for
        return text
    text = USERINFO.sub(rf"\g<scheme>{MASK}@", text)
    return SECRET_PARAM.sub(rf"\g<key>{MASK}", text)


class RedactedRecord(logging.LogRecord):
    """A log record whose message and traceback are redacted, whoever formats it."""

    def getMessage(self) -> str:  # noqa: N802 (logging's name)
        return redact(super().getMessage())

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.exc_info and self.exc_info[0] is not None:  # formatters reuse a set exc_text as is
            self.exc_text = redact("".join(traceback.format_exception(*self.exc_info)).rstrip("\n"))


def install() -> None:
    """Every log record of this process is a RedactedRecord (idempotent)."""
    logging.setLogRecordFactory(RedactedRecord)
