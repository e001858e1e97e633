"""Ad-network pixel requests: a spot's pixel plus a goal's event name.

Each network's base URL is a setting (POSTBACKS_PIXEL_URLS) so a test or a
proxy can stand in for the network.
"""

import copy
import hashlib
import json
import uuid
from urllib.parse import quote, urlencode

from django.conf import settings

from crm import values
from postbacks.delivery.render import Request
from tracker import shaping
from tracker.models import STATUS_REJECTED

# A pixel reports sales: an ad network has no event that takes one back, and
# counts every event it gets as one more (Meta, TikTok, GA4 and Metrica alike).
REJECTION = (
    "A pixel has no event for a rejection: the ad network would count it as another "
    "sale of this goal (Facebook, TikTok, GA4 and Metrica alike)."
)


def not_a_sale(conversion):
    """Why this event of `conversion` must not reach a pixel as the goal's
    event, or '': a rejection (a chargeback) is no sale."""
    return REJECTION if conversion.status == STATUS_REJECTED else ""


def _base(network):
    return settings.POSTBACKS_PIXEL_URLS[network].rstrip("/")


def _event_time(conversion):
    # A delivery's own event time (delivery.reported); the conversion's for one made before.
    return int((getattr(conversion, "event_time", None) or conversion.created).timestamp())


def _external_id(client):
    # Networks match users on hashed identifiers; our click id is the stable one.
    # None hashed from nothing: the hash of '' would match every such user.
    return hashlib.sha256(client.click_id.encode()).hexdigest() if client.click_id else ""


def _known(**values):
    """Only the values we know: one never given is left out, not sent empty or faked."""
    return {k: v for k, v in values.items() if v}


def _page(client):
    """Where the event happened: the page the click came from, else the spot's target."""
    return client.page_url or client.spot.target_url


def event_id(conversion, delivery_id):
    """The event's id at the network: the one fan-out gave the event
    (Delivery.event_id, set on the conversion by attempts.reported), the same
    on retries and resends, so the network dedupes it against the browser
    pixel's; the delivery's id for a delivery made before event ids."""
    return getattr(conversion, "event_id", "") or str(delivery_id)


def shared(pixel, conversion):
    """`conversion` with the amount the pixel is told: its payout share of the
    conversion's, rounded as the currency is paid (tracker.shaping)."""
    percent = getattr(pixel, "payout_share", 100)
    if percent == 100:
        return conversion
    told = copy.copy(conversion)
    told.amount = shaping.share_of(conversion.amount, percent, conversion.currency)
    return told


def ga_client_id(cookie):
    """GA4's client id from a _ga cookie ('GA1.1.1234567890.1700000000'), or ''."""
    parts = (cookie or "").split(".")
    return ".".join(parts[-2:]) if len(parts) >= 2 and all(parts[-2:]) else ""


def facebook_event(pixel, conversion, event, delivery_id):
    """One entry of the Conversions API's `data` array."""
    client = conversion.client
    entry = {
        "action_source": "website",
        "event_name": event,
        "event_time": _event_time(conversion),
        "event_id": event_id(conversion, delivery_id),
        "user_data": _known(
            external_id=_external_id(client),
            client_ip_address=client.ip,
            client_user_agent=client.user_agent,
            fbc=client.facebook_fbc,
            fbp=client.fbp,
        ),
        "custom_data": {"value": float(conversion.amount), "currency": conversion.currency},
    }
    if _page(client):
        entry["event_source_url"] = _page(client)
    return entry


def form_data(fields, boundary):
    """A multipart/form-data body of text fields, as `curl -F` sends them."""
    parts = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    )
    return "".join(parts) + f"--{boundary}--\r\n"


def facebook_request(pixel, texts, test=False):
    """Conversions API, as Meta's own example sends it (curl -F): a form with
    access_token and data, the JSON texts of its entries (up to 1,000 in one
    request). Multipart, so the JSON goes as it is: percent-escaping a
    thousand events cost a tenth of building their batch, and the body stays
    readable in the log. The pixel's test event code only on a test send:
    Meta shows such events in Test Events and nowhere else."""
    fields = {"access_token": pixel.access_token, "data": f"[{', '.join(texts)}]"}
    if test and pixel.test_event_code:
        fields["test_event_code"] = pixel.test_event_code
    boundary = f"----capi{uuid.uuid4().hex}"  # no event holds it
    return Request(
        method="POST",
        url=f"{_base('facebook')}/v18.0/{quote(pixel.pixel_id, safe='')}/events",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        body=form_data(fields, boundary).encode(),
        secrets=[pixel.access_token],
    )


def facebook(pixel, conversion, event, delivery_id, test=False):
    entry = facebook_event(pixel, conversion, event, delivery_id)
    return facebook_request(pixel, [json.dumps(entry)], test)


def tiktok_event(pixel, conversion, event, delivery_id):
    """One entry of the Events API's `data` array."""
    client = conversion.client
    entry = {
        "event": event,
        "event_time": _event_time(conversion),
        "event_id": event_id(conversion, delivery_id),
        "user": _known(
            external_id=_external_id(client),
            ttclid=client.ttclid,
            ip=client.ip,
            user_agent=client.user_agent,
        ),
        "properties": {
            "value": float(conversion.amount),
            "currency": conversion.currency,
        },
    }
    if _page(client):
        entry["page"] = {"url": _page(client)}
    return entry


def tiktok_request(pixel, texts, test=False):
    """Events API 2.0: JSON with the pixel code as event source, token in a
    header, the JSON texts of the entries as `data` (up to 1,000)."""
    head = {"event_source": "web", "event_source_id": pixel.pixel_id}
    if test and pixel.test_event_code:
        head["test_event_code"] = pixel.test_event_code
    body = f'{json.dumps(head)[:-1]}, "data": [{", ".join(texts)}]}}'
    return Request(
        method="POST",
        url=f"{_base('tiktok')}/open_api/v1.3/event/track/",
        headers={"Content-Type": "application/json", "Access-Token": pixel.access_token},
        body=body.encode(),
        secrets=[pixel.access_token],
    )


def tiktok(pixel, conversion, event, delivery_id, test=False):
    entry = tiktok_event(pixel, conversion, event, delivery_id)
    return tiktok_request(pixel, [json.dumps(entry)], test)


def google_event(pixel, conversion, event, delivery_id):
    """One entry of the Measurement Protocol's `events` array."""
    params = {"value": float(conversion.amount), "currency": conversion.currency}
    # GA4 dedupes purchases on transaction_id (it has no event id): the
    # partner's, else the event's id.
    params["transaction_id"] = conversion.tid or event_id(conversion, delivery_id)
    return {"name": event, "params": params}


def google_client_id(conversion):
    # GA4 requires a client id: the browser's from its _ga cookie when we have
    # it (what matches the user), else our click id (a user GA has not seen).
    return ga_client_id(conversion.client.ga) or conversion.client.click_id


def google_request(pixel, client_id, timestamp_micros, texts, debug=False):
    """GA4 Measurement Protocol: measurement id and API secret in the query; one
    client's events (up to 25) in a request. `debug`: the validation server,
    which answers what is wrong and records nothing."""
    query = urlencode({"measurement_id": pixel.pixel_id, "api_secret": pixel.access_token})
    head = {"client_id": client_id, "timestamp_micros": timestamp_micros}
    body = f'{json.dumps(head)[:-1]}, "events": [{", ".join(texts)}]}}'
    return Request(
        method="POST",
        url=f"{_base('google')}/{'debug/' if debug else ''}mp/collect?{query}",
        headers={"Content-Type": "application/json"},
        body=body.encode(),
        secrets=[pixel.access_token],
    )


def google(pixel, conversion, event, delivery_id, test=False):
    entry = google_event(pixel, conversion, event, delivery_id)
    micros = _event_time(conversion) * 1_000_000
    return google_request(pixel, google_client_id(conversion), micros, [json.dumps(entry)], test)


def yandex(pixel, conversion, event, delivery_id, test=False):
    """Metrica offline conversions: a CSV file uploaded as multipart form data.

    The user is matched on Metrica's own id (_ym_uid) or the ad click's yclid
    when the click brought one; else on our click id as the site's user id."""
    client = conversion.client
    kind, column, user = next(
        (k, c, v)
        for k, c, v in (
            ("CLIENT_ID", "ClientId", client.ym_uid),
            ("YCLID", "Yclid", client.yclid),
            ("USER_ID", "UserId", client.click_id),
        )
        if v
    )
    csv = (
        f"{column},Target,DateTime,Price,Currency\n"
        f"{user},{event},{_event_time(conversion)},"
        f"{values.money(conversion.amount)},{conversion.currency}\n"
    )
    boundary = f"----delivery{str(delivery_id).replace('-', '')}"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="conversions.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
        f"{csv}\r\n--{boundary}--\r\n"
    )
    return Request(
        method="POST",
        url=f"{_base('yandex')}/management/v1/counter/{quote(pixel.pixel_id, safe='')}"
        f"/offline_conversions/upload?client_id_type={kind}",
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Authorization": f"OAuth {pixel.access_token}",
        },
        body=body.encode(),
        secrets=[pixel.access_token],
    )


BUILDERS = {"facebook": facebook, "tiktok": tiktok, "google": google, "yandex": yandex}
# One event as an entry of a batch's array (pixel_batch.py sends them together).
EVENTS = {"facebook": facebook_event, "tiktok": tiktok_event, "google": google_event}


def event_name(pixel, conversion):
    """The goal's event name at the pixel's network; refuses what is no sale."""
    refused = not_a_sale(conversion)
    if refused:
        # Fan-out skips these; a delivery made before it did is refused here, never sent.
        raise ValueError(refused)
    return getattr(conversion.goal, f"{pixel.network}_event")


def build(pixel, conversion, delivery_id, test=False):
    """The request of one event; `test`: as the admin's test send makes it (the
    pixel's test event code, GA4's validation server)."""
    event = event_name(pixel, conversion)
    return BUILDERS[pixel.network](pixel, shared(pixel, conversion), event, delivery_id, test)


def entry(pixel, conversion, delivery_id):
    """One event as its network's batch takes it, a dict."""
    event = event_name(pixel, conversion)
    return EVENTS[pixel.network](pixel, shared(pixel, conversion), event, delivery_id)
