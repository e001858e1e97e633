"""Postback tokens out of the logs.

A spot's postback token is the secret of its incoming URL, and Django writes
paths to the log: "Not Found: /api/postbacks/<token>/tracker-postback" on
every 4xx and 5xx, and runserver's request lines. This filter, on the console
handler of settings.LOGGING, keeps the first few characters of a token in
every line that handler prints: the message, a traceback and a stack.
(The spot's API key travels in a header, which Django does not log.)
"""

import logging
import re

# The path segment after /api/postbacks/, up to a slash, query, space or quote.
TOKEN_IN_PATH = re.compile(r"(/api/postbacks/)([^/?#\s\"'<>]+)")
# Enough to tell spots apart in a log, far too little to call the URL.
KEEP = 4


def mask(text):
    return TOKEN_IN_PATH.sub(lambda m: f"{m[1]}{m[2][:KEEP]}…", text)


class MaskTokens(logging.Filter):
    """Masks tokens in incoming postback URLs; never drops a record."""

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # bad arguments: the handler reports them as usual
            return True
        masked = mask(message)
        if masked != message:
            # The formatted text replaces the format and its arguments (Django's
            # request lines pass the path as an argument).
            record.msg, record.args = masked, None
        if record.exc_text:  # formatted by a handler before this one
            record.exc_text = mask(record.exc_text)
        elif record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            if mask(text) != text:
                # A formatter prints exc_text when it is set, instead of exc_info.
                record.exc_text = mask(text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True
