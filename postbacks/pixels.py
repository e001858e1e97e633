"""Ad-network pixel requests: a spot's pixel plus a goal's event name.

Each network's base URL is a setting (POSTBACKS_PIXEL_URLS) so a test or a
proxy can stand in for the network.
"""

import hashlib
import json
from urllib.parse import quote, urlencode

from django.conf import settings

from postbacks.render import Request


def _base(network):
    return settings.POSTBACKS_PIXEL_URLS[network].rstrip("/")


def _event_time(conversion):
    return int(conversion.created.timestamp())


def _external_id(client):
    # Networks match users on hashed identifiers; our click id is the stable one.
    return hashlib.sha256(client.click_id.encode()).hexdigest()


def facebook(pixel, conversion, event, delivery_id):
    """Conversions API, as 001's server pixel: form body with access_token and data."""
    client = conversion.client
    data = [
        {
            "action_source": "website",
            "event_name": event,
            "event_time": _event_time(conversion),
            "event_id": str(delivery_id),
            "user_data": {"external_id": _external_id(client)},
            "custom_data": {"value": float(conversion.amount), "currency": conversion.currency},
        }
    ]
    fields = {"access_token": pixel.access_token, "data": json.dumps(data)}
    if pixel.test_event_code:
        fields["test_event_code"] = pixel.test_event_code

    body = "&".join(f"{k}={quote(v, safe='')}" for k, v in fields.items())
    return Request(
        method="POST",
        url=f"{_base('facebook')}/v18.0/{quote(pixel.pixel_id, safe='')}/events",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=body.encode(),
        secrets=[pixel.access_token],
    )


def tiktok(pixel, conversion, event, delivery_id):
    """Events API 2.0: JSON with the pixel code as event source, token in a header."""
    payload = {
        "event_source": "web",
        "event_source_id": pixel.pixel_id,
        "data": [
            {
                "event": event,
                "event_time": _event_time(conversion),
                "event_id": str(delivery_id),
                "user": {"external_id": _external_id(conversion.client)},
                "properties": {
                    "value": float(conversion.amount),
                    "currency": conversion.currency,
                },
            }
        ],
    }
    if pixel.test_event_code:
        payload["test_event_code"] = pixel.test_event_code
    return Request(
        method="POST",
        url=f"{_base('tiktok')}/open_api/v1.3/event/track/",
        headers={"Content-Type": "application/json", "Access-Token": pixel.access_token},
        body=json.dumps(payload).encode(),
        secrets=[pixel.access_token],
    )


def google(pixel, conversion, event, delivery_id):
    """GA4 Measurement Protocol: measurement id and API secret in the query."""

    query = urlencode({"measurement_id": pixel.pixel_id, "api_secret": pixel.access_token})
    params = {"value": float(conversion.amount), "currency": conversion.currency}
    if conversion.tid:
        params["transaction_id"] = conversion.tid
    payload = {
        "client_id": conversion.client.click_id,
        "timestamp_micros": _event_time(conversion) * 1_000_000,
        "events": [{"name": event, "params": params}],
    }
    return Request(
        method="POST",
        url=f"{_base('google')}/mp/collect?{query}",
        headers={"Content-Type": "application/json"},
        body=json.dumps(payload).encode(),
        secrets=[pixel.access_token],
    )


def yandex(pixel, conversion, event, delivery_id):
    """Metrica offline conversions: a CSV file uploaded as multipart form data."""

    csv = (
        "ClientId,Target,DateTime,Price,Currency\n"
        f"{conversion.client.click_id},{event},{_event_time(conversion)},"
        f"{conversion.amount},{conversion.currency}\n"
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
        "/offline_conversions/upload?client_id_type=CLIENT_ID",
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Authorization": f"OAuth {pixel.access_token}",
        },
        body=body.encode(),
        secrets=[pixel.access_token],
    )


BUILDERS = {"facebook": facebook, "tiktok": tiktok, "google": google, "yandex": yandex}


def build(pixel, conversion, delivery_id):
    event = getattr(conversion.goal, f"{pixel.network}_event")
    return BUILDERS[pixel.network](pixel, conversion, event, delivery_id)
