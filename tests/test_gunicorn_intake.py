"""What gunicorn hands the incoming postback URL is stored and processed: a
chunked body (no Content-Length) and a URL longer than gunicorn's default
request-line limit.

The real gunicorn, with the project's gunicorn.conf.py, must see the test's
rows: it needs a database other processes can open, so it runs in the
PostgreSQL pass (as tests/test_outgoing_worker_process.py). The chunked body
is also checked in process, with the WSGI environ gunicorn builds for it.
"""

import io
import os
import socket
from decimal import Decimal

import pytest
import requests
from django.db import connection
from django.test import override_settings

from crm.models import Conversion
from postbacks.models import IncomingPostback
from tests.gunicorn import free_port, listening, serving


def incoming_path(spot):
    return f"/api/postbacks/{spot.postback_token}/tracker-postback"


def as_gunicorn_passes_a_chunked_body(body):
    # No CONTENT_LENGTH; gunicorn decodes the chunks and ends wsgi.input with the body.
    return {
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "HTTP_TRANSFER_ENCODING": "chunked",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
    }


def test_a_chunked_body_is_read_from_wsgi_input_and_processed(client, spot, lead):
    body = f"clickid={lead.click_id}&tracker.event=registration".encode()
    response = client.generic(
        "POST", incoming_path(spot), **as_gunicorn_passes_a_chunked_body(body)
    )
    assert response.status_code == 200, response.content
    row = IncomingPostback.objects.get()
    assert (row.body, row.status) == (body.decode(), IncomingPostback.ACCEPTED)
    assert Conversion.objects.get().goal.token == "reg"


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_chunked_body_over_the_upload_limit_is_a_413_and_its_beginning_is_kept(
    client, spot, lead
):
    body = f"clickid={lead.click_id}&tracker.event=registration&pad={'y' * 5000}".encode()
    response = client.generic(
        "POST", incoming_path(spot), **as_gunicorn_passes_a_chunked_body(body)
    )
    assert response.status_code == 413
    row = IncomingPostback.objects.get()
    assert body.decode().startswith(row.body) and len(row.body) > 1000
    assert "over the upload limit" in row.warnings
    assert not Conversion.objects.exists()


# -- a real gunicorn -------------------------------------------------------------


@pytest.fixture
def shared_db(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("gunicorn's processes need a database they can open: PostgreSQL pass only")


@pytest.fixture
def gunicorn(shared_db, tmp_path):
    """The base URL of `gunicorn -c gunicorn.conf.py tracker.wsgi` on the test database."""
    db = connection.settings_dict
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tracker.settings",
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST']}:{db['PORT']}"
        f"/{db['NAME']}",
        "DATABASE_POOL": "false",
        "SECRET_KEY": "test-gunicorn",
        "WEB_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
    }
    with serving(env, tmp_path / "gunicorn.log", listening(port)):
        yield f"http://127.0.0.1:{port}"


def send_raw(base_url, request):
    """Write the bytes of one HTTP request; returns (status, body) of the answer."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):  # gunicorn's sync worker closes after answering
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_gunicorn_stores_and_processes_a_chunked_post(gunicorn, spot, lead):
    parts = [f"clickid={lead.click_id}&".encode(), b"tracker.event=sale&", b"tracker.cost=12.50"]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    request = (
        f"POST {incoming_path(spot)} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Transfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + chunked

    status, body = send_raw(gunicorn, request)

    assert status == 200, body
    row = IncomingPostback.objects.get()
    assert (row.method, row.body) == ("POST", b"".join(parts).decode())
    assert (row.status, row.http_status) == (IncomingPostback.ACCEPTED, 200)
    conversion = Conversion.objects.get()
    assert (conversion.client, conversion.goal.token, conversion.amount) == (
        lead,
        "dep",
        Decimal("12.5"),
    )
    assert row.conversion == conversion


def test_gunicorn_stores_and_processes_a_7000_byte_url(gunicorn, spot, lead):
    query = f"clickid={lead.click_id}&tracker.event=registration&sub5="
    query += "p" * (7000 - len(incoming_path(spot)) - len(query) - 1)
    url = f"{incoming_path(spot)}?{query}"
    assert len(url) == 7000  # over gunicorn's default request line of 4094 bytes

    answer = requests.get(gunicorn + url, timeout=10)

    assert answer.status_code == 200, answer.text
    row = IncomingPostback.objects.get()
    assert (row.query, row.status) == (query, IncomingPostback.ACCEPTED)
    assert row.conversion == Conversion.objects.get(client=lead, goal__token="reg")


def test_a_chunked_json_body_reaches_the_bot_api(client, spot):
    body = b'{"user_id": 42, "name": "Ann"}'
    environ = as_gunicorn_passes_a_chunked_body(body)
    environ["CONTENT_TYPE"] = "application/json"
    response = client.generic("POST", "/api/clients", HTTP_X_API_KEY=spot.api_key, **environ)
    assert response.status_code == 201, response.content
    assert response.json()["created"] is True
