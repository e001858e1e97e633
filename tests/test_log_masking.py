"""A spot's postback token and API key never reach the log in clear."""

import io
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.test_outgoing_redis import free_port
from tracker.logmask import MaskTokens, mask

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def console():
    """What the console handler of settings.LOGGING prints, as text."""
    [handler] = [
        h for h in logging.getLogger().handlers if any(isinstance(f, MaskTokens) for f in h.filters)
    ]
    stream = io.StringIO()
    old = handler.setStream(stream)
    yield stream
    handler.setStream(old)


def incoming_url(token):
    return f"/api/postbacks/{token}/tracker-postback"


def test_a_404_to_an_unknown_token_logs_the_path_with_the_token_masked(client, db, console, caplog):
    token = str(uuid.uuid4())
    assert client.get(incoming_url(token), {"clickid": "x"}).status_code == 404
    printed = console.getvalue()
    assert f"Not Found: /api/postbacks/{token[:4]}…/tracker-postback" in printed
    assert token not in printed
    assert token[4:] not in caplog.text


def test_a_rejected_postback_of_a_spot_logs_its_token_masked(client, spot, console):
    token = str(spot.postback_token)
    assert client.get(incoming_url(token)).status_code == 400  # no click id
    printed = console.getvalue()
    assert f"Bad Request: /api/postbacks/{token[:4]}…/tracker-postback" in printed
    assert token not in printed


def test_a_token_in_a_traceback_is_masked(console):
    token = str(uuid.uuid4())
    try:
        raise ValueError(f"cannot process /api/postbacks/{token}/tracker-postback")
    except ValueError:
        logging.getLogger("postbacks.incoming").exception("Incoming postback failed")
    printed = console.getvalue()
    assert f"ValueError: cannot process /api/postbacks/{token[:4]}…/tracker-postback" in printed
    assert token not in printed


def test_the_spot_api_key_does_not_reach_the_log(client, spot, console):
    wrong = "k" * 40
    assert client.post("/api/clients", HTTP_X_API_KEY=wrong).status_code == 403
    assert (
        client.post(
            "/api/clients", b"not json", "application/json", HTTP_X_API_KEY=spot.api_key
        ).status_code
        == 400
    )
    printed = console.getvalue()
    assert "Forbidden: /api/clients" in printed and "Bad Request: /api/clients" in printed
    assert wrong not in printed and spot.api_key not in printed


def test_mask_keeps_the_first_four_characters_of_each_token():
    line = '"GET /api/postbacks/3f2a9c/tracker-postback?clickid=1 HTTP/1.1" 404 / /api/postbacks/ab'
    assert mask(line) == (
        '"GET /api/postbacks/3f2a…/tracker-postback?clickid=1 HTTP/1.1" 404 / /api/postbacks/ab…'
    )


def test_runserver_request_lines_show_the_token_masked(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": "",
        "SECRET_KEY": "test-runserver",
        "DEBUG": "false",
    }
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    token = str(uuid.uuid4())
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                # The URL with a slash too many: a 404 of the URL resolver, no database needed.
                url = f"http://127.0.0.1:{port}{incoming_url(token)}/?clickid=1"
                answer = requests.get(url, timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "runserver did not start"
                time.sleep(0.1)
        assert answer.status_code == 404
        time.sleep(0.3)  # the request line is written after the answer
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert f"GET /api/postbacks/{token[:4]}…/tracker-postback/?clickid=1 HTTP/1.1" in output
    assert token not in output
