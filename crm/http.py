"""Reading a request's body, a chunked one too, for the public endpoints.

Under gunicorn a chunked body comes without CONTENT_LENGTH, so Django's
request.body reads none of it; gunicorn sets wsgi.input_terminated, which
says the stream ends where the body ends, so reading it to the end cannot
block. A chunked body the server cannot decode (a bad chunk size) is
unreadable input, not a crash.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig


class TooBig(Exception):
    """The body is over DATA_UPLOAD_MAX_MEMORY_SIZE; `head` is its beginning."""

    def __init__(self, head):
        super().__init__("The body is over the upload limit.")
        self.head = head


class Unreadable(Exception):
    """The body could not be read (a malformed chunked encoding, a broken connection)."""


def is_chunked(request):
    return (
        not request.META.get("CONTENT_LENGTH")
        and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
        and request.META.get("wsgi.input_terminated", False)
    )


def read_body(request, head=0):
    """The body's bytes. Raises TooBig (with the first `head` bytes) or Unreadable."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        if is_chunked(request):
            stream = request.META["wsgi.input"]
            data = stream.read() if limit is None else stream.read(limit + 1)
            if limit is not None and len(data) > limit:
                raise TooBig(data[:head])
            return data
        try:
            return request.body
        except RequestDataTooBig:
            raise TooBig(request.read(head)) from None
    except (TooBig, RequestDataTooBig):
        raise
    except Exception as e:  # the server's own parse errors are not OSError
        raise Unreadable(f"{type(e).__name__}: {str(e)[:200]}") from e
