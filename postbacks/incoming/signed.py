"""Signed incoming requests (Standard Webhooks v1, tracker/signing.py).

A spot or partner with `require_signature` accepts only JSON POSTs signed
with its signing secret, besides its URL token and IP allowlist: a request
without a valid signature, or with a timestamp over 5 minutes from our clock,
is answered 401 with the reason and its row kept as rejected.

The signature headers and the raw body are taken when the request is stored
(`capture`) and checked when it is decided (`check`), as only its parameters
name the partner whose secret applies. They are not stored: a row gets its
webhook-id once its signature was verified, and a replay trusts that check
(an unmatched signed postback replays when its client appears); a row of a
spot that requires signatures and has no webhook-id is refused again.

A repeat of a verified webhook-id on the same spot (a row not rejected has
it) is answered 200 with status "duplicate" and does nothing: a sender
retries every answer that is not 2xx, so a 409 would make it send again
what we already have.
"""

from dataclasses import dataclass

from postbacks.incoming.params import Rejected
from postbacks.models import IncomingPostback
from tracker.signing import Invalid, verify


@dataclass
class Webhook:
    """What a signed request carries, as it came."""

    msg_id: str
    timestamp: str
    signature: str
    body: bytes


def capture(request, raw):
    headers = request.headers
    return Webhook(
        headers.get("webhook-id", "").strip(),
        headers.get("webhook-timestamp", "").strip(),
        headers.get("webhook-signature", ""),
        raw or b"",
    )


def requiring(spot, partner):
    """The callers whose rules ask for signatures: the partner, the spot, or both."""
    return [c for c in (partner, spot) if c is not None and c.require_signature]


def is_json(content_type):
    kind = content_type.split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def check(row, spot, partner, webhook):
    """Raise Rejected(401) unless the request is signed as its callers require.
    Returns what to answer a repeat of an earlier webhook-id, or ''."""
    callers = requiring(spot, partner)
    if not callers:
        return ""
    names = " and ".join(str(c) for c in callers)
    if webhook is None:  # a replay of the stored row
        if row.webhook_id:
            return repeat_of(spot, row.webhook_id, row.pk)
        raise Rejected(
            401, f"{names} requires signed requests and this one was not verified when it came."
        )
    if row.method != "POST" or not is_json(row.content_type):
        raise Rejected(
            401,
            f"{names} accepts only signed JSON POSTs: send POST with Content-Type "
            "application/json and the webhook-id, webhook-timestamp and webhook-signature "
            "headers (Standard Webhooks).",
        )
    secrets = [c.signing_secret for c in callers if c.signing_secret]
    if not secrets:
        raise Rejected(
            401, f"{names} requires signed requests but has no signing secret: generate one."
        )
    try:
        verify(secrets, webhook.msg_id, webhook.timestamp, webhook.signature, webhook.body)
    except Invalid as e:
        raise Rejected(401, f"{names}: {e}") from e
    except ValueError as e:  # a secret pasted by hand that is not whsec_ base64
        raise Rejected(401, f"The signing secret of {names} is unusable: {e}") from e
    repeat = repeat_of(spot, webhook.msg_id, row.pk)
    if not repeat:
        row.webhook_id = webhook.msg_id  # kept with the outcome (process.record)
    return repeat


def repeat_of(spot, msg_id, pk):
    """What to answer when another row of the spot has this verified id, or ''."""
    rows = IncomingPostback.objects.filter(spot=spot, webhook_id=msg_id).exclude(pk=pk)
    earlier = rows.exclude(status=IncomingPostback.REJECTED).values_list("pk", flat=True).first()
    if earlier is None:
        return ""
    return f"webhook-id {msg_id!r} came before (incoming postback {earlier}): nothing done."
