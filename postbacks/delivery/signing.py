"""Signed outgoing postbacks: the Standard Webhooks v1 headers of one attempt.

Every attempt of a postback with `signed` on carries
- webhook-id: the delivery id, the same on its retries and resends (an admin
  test send has its own, test_<hex>);
- webhook-timestamp: the attempt's unix seconds;
- webhook-signature: `v1,<base64>` per active secret, space separated: the
  postback's secret and, for POSTBACKS_SIGNING_GRACE_HOURS after a rotation,
  the one before it.

What is signed (tracker/signing.py): "{webhook-id}.{webhook-timestamp}."
followed by the body's bytes as sent; a GET has no body, so it signs the
empty body followed by the request target, the URL's path and query as on
the request line ("{id}.{ts}./postback?subid=a1&status=sale"), or the
signature would cover nothing the receiver reads. Pixels and goals'
external postbacks are never signed: they have no postback.
"""

import datetime
import time
import uuid

import requests
from django.conf import settings
from django.utils import timezone

from postbacks.models import OutgoingPostback
from tracker.signing import new_secret, sign

ID, TIMESTAMP, SIGNATURE = "webhook-id", "webhook-timestamp", "webhook-signature"


def grace():
    return datetime.timedelta(hours=getattr(settings, "POSTBACKS_SIGNING_GRACE_HOURS", 24))


def active_secrets(pb, at=None):
    """The secrets that sign now: the current one, and the old one in its grace period."""
    at = at or timezone.now()
    keys = [pb.signing_secret] if pb.signing_secret else []
    if pb.old_signing_secret and pb.old_secret_until and pb.old_secret_until > at:
        keys.append(pb.old_signing_secret)
    return keys


def target(url):
    """The path and query of `url` as the request line carries them (requests' quoting)."""
    return requests.Request("GET", url).prepare().path_url


def payload(req):
    """What follows "{id}.{timestamp}." in the signed text (module docstring)."""
    if req.method == "GET":
        return target(req.url).encode()
    return req.body or b""


def apply(req, pb, msg_id, at=None):
    """Put the webhook-* headers of one attempt on `req` when `pb` signs.

    Called right before the send, so the timestamp is the attempt's own. The
    secrets join the request's masked values: the delivery log shows the
    signature, never a secret."""
    if pb is None or not pb.signed:
        return req
    secrets = active_secrets(pb)
    if not secrets:
        raise ValueError(
            "This postback signs its requests but has no signing secret: "
            "press Rotate signing secret on its page to make one."
        )
    timestamp = int(time.time() if at is None else at)
    req.headers = {
        **req.headers,
        ID: str(msg_id),
        TIMESTAMP: str(timestamp),
        SIGNATURE: sign(secrets, msg_id, timestamp, payload(req)),
    }
    req.secrets = [*req.secrets, *secrets, *(s.removeprefix("whsec_") for s in secrets)]
    return req


def test_id():
    """The webhook-id of an admin test send: not a delivery, so an id of its own."""
    return f"test_{uuid.uuid4().hex}"


def ensure_secret(pb):
    """Make the secret of a postback just switched to signed; returns it, or ''
    when it has one already (it is shown once, when made)."""
    if not pb.signed or pb.signing_secret:
        return ""
    pb.signing_secret = new_secret()
    OutgoingPostback.objects.filter(pk=pb.pk).update(signing_secret=pb.signing_secret)
    return pb.signing_secret


def rotate(pb):
    """A new secret; the current one keeps signing for the grace period (one
    old secret at most: rotating again within it drops the older). Returns the new one."""
    fields = {
        "signing_secret": new_secret(),
        "old_signing_secret": pb.signing_secret,
        "old_secret_until": timezone.now() + grace() if pb.signing_secret else None,
    }
    OutgoingPostback.objects.filter(pk=pb.pk).update(**fields)
    for name, value in fields.items():
        setattr(pb, name, value)
    return pb.signing_secret
