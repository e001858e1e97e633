"""Building the exact HTTP request of a delivery from its templates.

Every macro value is escaped for where it lands: percent-encoded in the URL,
form-encoded in a form body, JSON-escaped in JSON, XML-escaped in XML and
made latin-1 safe (no CR/LF) in headers. Rendering is one pass, so a value
that contains "{x}" is never expanded again.
"""

import json
import re
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape as xml_escape

from crm.macros import render, url_escape
from tracker import shaping
from tracker.status_words import parse_status_words

CONTENT_TYPES = {
    "form": "application/x-www-form-urlencoded",
    "json": "application/json",
    "xml": "application/xml",
}
INLINE_RE = re.compile(r"\|(POST|JSON)\|")
MASK = "********"
# A secret this short would mask ordinary text all over the log.
MIN_SECRET = 4


@dataclass
class Request:
    """A request to send. `secrets` are values (tokens, secret headers) that the
    request carries as they are but that are masked wherever it is shown or
    stored: the *_text methods."""

    method: str
    url: str
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    secrets: list = field(default_factory=list)

    def mask(self, text):
        for secret in self.secrets:
            if len(secret) >= MIN_SECRET:
                # As written, and as percent- or form-encoded in a URL or body.
                for form in {secret, quote(secret, safe=""), quote_plus(secret, safe="")}:
                    text = text.replace(form, MASK)
        return text

    def url_text(self):
        return self.mask(self.url)

    def headers_text(self):
        return self.mask("\n".join(f"{k}: {v}" for k, v in self.headers.items()))

    def body_text(self):
        return self.mask(self.body.decode("utf-8", errors="replace"))


def form_escape(value):
    return quote_plus(str(value), safe="")


def json_escape(value):
    return json.dumps(str(value), ensure_ascii=False)[1:-1]


def xml_value_escape(value):
    return xml_escape(str(value), {'"': "&quot;", "'": "&apos;"})


def header_escape(value):
    # A header value is one latin-1 line: a CR/LF would start a new header.
    text = re.sub(r"[\r\n]+", " ", str(value))
    return text.encode("latin-1", errors="replace").decode("latin-1")


BODY_ESCAPES = {"form": form_escape, "json": json_escape, "xml": xml_value_escape}


def split_inline(template):
    """'URL|POST|body' -> (url, 'POST', 'form', body); 'URL|JSON|body' -> json."""
    match = INLINE_RE.search(template)
    if not match:
        return template.strip(), None, None, None
    url, body = template[: match.start()], template[match.end() :]
    fmt = "form" if match.group(1) == "POST" else "json"
    return url.strip(), "POST", fmt, body


def parse_headers(text):
    """'Name: value' lines -> [(name, value template)]; raises ValueError."""
    result = []
    for n, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
            raise ValueError(f"Header line {n}: write 'Name: value', got {line.strip()!r}.")
        result.append((name, value.strip()))
    return result


def parse_statuses(text):
    """'200, 201-204' -> [(200, 200), (201, 204)]; raises ValueError."""
    ranges = []
    for part in re.split(r"[\s,;]+", (text or "").strip()):
        if not part:
            continue
        m = re.fullmatch(r"(\d{3})(?:-(\d{3}))?", part)
        if not m:
            raise ValueError(f"{part!r} is not a status code or a range like 200-299.")
        low = int(m[1])
        ranges.append((low, int(m[2] or low)))
    return ranges


def with_status_words(postback, ctx):
    """`ctx` with {status} and {previous_status} in the receiver's words, when it has them."""
    words = parse_status_words(getattr(postback, "status_words", ""))
    if not words:
        return ctx
    ctx = dict(ctx)
    for name in ("status", "previous_status"):
        if ctx.get(name) in words:
            ctx[name] = words[ctx[name]]
    return ctx


# The amounts a payout share scales, by their names and other trackers';
# {sum_original} (and {OriginalAmount}) keep the conversion's own.
SHARED_AMOUNTS = (
    "sum",
    "previous_sum",
    "DeltaPayout",
    "DeltaAmount",
    "Payout",
    "Amount",
    "IntendedPayout",
    "IntendedAmount",
)


def with_payout_share(postback, ctx):
    """`ctx` with its amounts at the postback's payout share, rounded as the
    currency is paid (2 places, none for JPY). A partner's fixed postback
    sends the amounts as they are, as it sends every event."""
    percent = getattr(postback, "payout_share", 100)
    if percent == 100 or getattr(postback, "locked", False):
        return ctx
    currency = str(ctx.get("currency") or "")
    shared = dict(ctx)
    for name in SHARED_AMOUNTS:
        if name in shared:
            shared[name] = shaping.shared_text(str(shared[name]), percent, currency)
    return shared


def build(postback, ctx):
    """The request `postback` makes for the macro context `ctx`."""
    ctx = with_payout_share(postback, with_status_words(postback, ctx))
    url_t, method, fmt, body_t = split_inline(postback.url)
    if method is None:
        method, fmt, body_t = postback.method, postback.body_format, postback.body
        if method == "GET":
            fmt, body_t = "none", ""
    url = render(url_t, ctx, url_escape)
    body = ""
    headers = {}
    if fmt in BODY_ESCAPES:
        body = render(body_t, ctx, BODY_ESCAPES[fmt])
        headers["Content-Type"] = CONTENT_TYPES[fmt] + "; charset=utf-8"
    secret_names = {n.lower() for n in parse_names(postback.secret_headers)}
    secrets = []
    for name, value in parse_headers(postback.headers):
        headers[name] = render(value, ctx, header_escape)
        if name.lower() in secret_names:
            secrets.append(headers[name])
    return Request(method, url, headers, body.encode("utf-8"), secrets)


def parse_names(text):
    """'Authorization, X-Api-Key' -> ['Authorization', 'X-Api-Key']."""
    return [n for n in re.split(r"[\s,;]+", text or "") if n]


# What an empty macro means for the client, said next to its name.
WHY_EMPTY = {
    "cl_id": "the client has no click id of your tracker",
    "click": "the client has no click id",
    "click_id": "the client has no click id",
    "user_id": "the client has no Telegram user id",
    "player_id": "the partner sent no player id",
    "tid": "the partner sent no transaction id",
    "sum": "the conversion has no amount",
    "geo": "the client's country is unknown",
    "fbclid": "the click carried no fbclid",
    "gclid": "the click carried no gclid",
    "ttclid": "the click carried no ttclid",
}


def parse_required(text):
    """'cl_id, {fields__x}' -> ['cl_id', 'fields__x']: names, braces or not."""
    return [n.strip("{}") for n in parse_names(text) if n.strip("{}")]


def missing_required(postback, ctx):
    """Which required macros of `postback` are empty in `ctx` and why, or ''."""
    empty = [n for n in parse_required(postback.required_macros) if not str(ctx.get(n) or "")]
    if not empty:
        return ""
    parts = []
    for name in empty:
        why = WHY_EMPTY.get(name) or (
            "the client has no value for it"
            if name.startswith(("fields__", "params__"))
            else "it has no value for this event"
        )
        parts.append(f"{{{name}}} is empty ({why})")
    return "; ".join(parts)


def build_plain_url(template, ctx):
    """A goal's external postback: a URL template, or URL|POST|body / URL|JSON|body."""
    url_t, method, fmt, body_t = split_inline(template)
    url = render(url_t, ctx, url_escape)
    if method is None:
        return Request(method="GET", url=url)
    body = render(body_t, ctx, BODY_ESCAPES[fmt])
    headers = {"Content-Type": CONTENT_TYPES[fmt] + "; charset=utf-8"}
    return Request(method=method, url=url, headers=headers, body=body.encode("utf-8"))
