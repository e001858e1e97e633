"""Standard Webhooks v1 signatures (www.standardwebhooks.com): the scheme alone.

Outgoing postbacks sign with it (postbacks/delivery/signing.py) and the
incoming endpoint checks it (postbacks/incoming/signed.py); the admins of
both layers make secrets with `new_secret`, so it lives in the lowest one.

A secret is `whsec_` + base64 of random bytes; the HMAC key is those bytes.
A signature is `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}." + payload)),
and a header carries one per key, space separated.
"""

import base64
import binascii
import hashlib
import hmac
import secrets as random_bytes
import time

PREFIX = "whsec_"
# Within the 24-64 bytes the scheme allows; 32 is the HMAC-SHA256 block's half.
SECRET_BYTES = 32
# How far a request's timestamp may be from our clock, either way (the scheme's 5 minutes).
TOLERANCE = 300
# Longest webhook-id kept for dedupe (IncomingPostback.webhook_id).
MAX_ID = 100


class Invalid(Exception):
    """A request whose signature headers do not prove it; the text says why."""


def new_secret():
    return PREFIX + base64.b64encode(random_bytes.token_bytes(SECRET_BYTES)).decode()


def key_of(secret):
    """The HMAC key of a `whsec_...` secret; ValueError when it is not base64."""
    text = secret.strip()
    text = text.removeprefix(PREFIX)
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as e:
        raise ValueError("A signing secret is whsec_ followed by base64.") from e
    if not key:
        raise ValueError("The signing secret is empty.")
    return key


def signature(secret, msg_id, timestamp, payload):
    """`v1,<base64>` of one secret over "{msg_id}.{timestamp}." + payload (bytes)."""
    signed = f"{msg_id}.{int(timestamp)}.".encode() + payload
    digest = hmac.new(key_of(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign(secrets, msg_id, timestamp, payload):
    """The webhook-signature header: one signature per secret, space separated."""
    return " ".join(signature(s, msg_id, timestamp, payload) for s in secrets)


def verify(secrets, msg_id, timestamp, signatures, payload, now=None):
    """Raise Invalid unless one of `signatures` (the header) is of one of
    `secrets` and `timestamp` is within TOLERANCE of now."""
    if not (msg_id and timestamp and signatures):
        raise Invalid(
            "The request is not signed: send the webhook-id, webhook-timestamp and "
            "webhook-signature headers (Standard Webhooks)."
        )
    if len(msg_id) > MAX_ID:
        raise Invalid(f"webhook-id is longer than {MAX_ID} characters.")
    try:
        at = int(timestamp)
    except ValueError:
        raise Invalid(f"webhook-timestamp {timestamp[:30]!r} is not unix seconds.") from None
    now = time.time() if now is None else now
    if abs(now - at) > TOLERANCE:
        raise Invalid(
            f"webhook-timestamp is {int(now - at)} s from our clock; at most {TOLERANCE} s "
            "either way is accepted (a replayed or delayed request, or a wrong clock)."
        )
    expected = [signature(s, msg_id, at, payload).encode() for s in secrets]
    # Bytes: compare_digest refuses a str that is not ASCII, and the header may be anything.
    given = [g.encode("utf-8", "replace") for g in signatures.split()]
    if not any(hmac.compare_digest(e, g) for e in expected for g in given):
        raise Invalid(
            "webhook-signature does not match: sign '{webhook-id}.{webhook-timestamp}.{body}' "
            "with HMAC-SHA256 and the signing secret, and send v1,<base64 of it>."
        )
