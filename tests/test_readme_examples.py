"""The README's examples of the public endpoints work as pasted on a fresh spot.

The examples are read from README.md itself: every line of a code block that
is an incoming postback (a `?clickid=…` query, or a curl of a
`tracker-postback` URL) and every `/go/<spot slug>?…` click. Only the parts a
user fills in are replaced: the host, the spot's token and slug, a click id of
one of its clients (made by the README's own click example), and the values a
network puts in for its macros. Each must answer 2xx with what the README
says it does.
"""

import json
import re
import shlex
import shutil
import subprocess
import urllib.request
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from crm.models import Client, Conversion
from postbacks.loops import intake
from postbacks.models import IncomingPostback
from tracker.models import Spot

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```([a-z]*)\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+)`")
README_HOST = "http://127.0.0.1:8000"

# What a network puts in for the macros of the examples when it calls.
MACROS = {
    "{sub1}": "<click id>",
    "{sub_id1}": "<click id>",
    "{amount}": "50",
    "{id}": "tx-1",
    "{playerid}": "p-7",
}


def code_blocks():
    """(language, text) of every fenced code block of the README."""
    return BLOCK.findall(README.read_text())


def query_examples():
    """The `?clickid=…` lines: an incoming postback's parameters."""
    return [
        line.strip()
        for _, text in code_blocks()
        for line in text.splitlines()
        if line.strip().startswith("?") and "clickid=" in line
    ]


def curl_examples():
    """(command, the JSON answer the README shows after it, or None)."""
    blocks = code_blocks()
    found = []
    for i, (_, text) in enumerate(blocks):
        for line in text.splitlines():
            if line.strip().startswith("curl") and "tracker-postback" in line:
                after = blocks[i + 1] if i + 1 < len(blocks) else ("", "")
                claimed = json.loads(after[1]) if after[0] == "json" else None
                found.append((line.strip(), claimed))
    return found


def click_examples():
    # `/go/...` alone names the endpoint; an example has its parameters.
    return [c for c in INLINE.findall(README.read_text()) if c.startswith("/go/") and "?" in c]


def test_the_readme_has_the_examples_this_test_runs():
    # A rewrite of the README that drops them must not make this test pass empty.
    assert len(query_examples()) >= 2
    assert len(curl_examples()) >= 1 and all(claimed for _, claimed in curl_examples())
    assert len(click_examples()) >= 1


@pytest.fixture
def fresh_spot(db):
    # As a team lead makes one: a name, a slug and where its clicks go.
    return Spot.objects.create(name="Fresh", slug="fresh", target_url="https://p.example/r")


def click(client, spot):
    """Run the README's click example; the client it made."""
    (example,) = click_examples()
    path = example.replace("<spot slug>", spot.slug).replace("…", "readme")
    response = client.get(path)
    assert response.status_code == 302, response.content
    made = Client.objects.filter(spot=spot).order_by("-id").first()
    query = dict(parse_qsl(urlsplit(path).query))
    assert made.advert_campaign_id == query["advert__campaign_id"]
    assert made.params.get("utm_source") == query["utm_source"]
    return made


def test_the_click_example_makes_a_client_and_redirects(client, fresh_spot):
    assert click(client, fresh_spot).click_id


def filled(example, click_id):
    for macro, value in MACROS.items():
        example = example.replace(macro, value)
    assert not re.search(r"[{}]", example), f"a macro this test does not know: {example}"
    return example.replace("<click id>", click_id)


@pytest.mark.parametrize("example", query_examples())
def test_each_dialect_example_records_what_it_says(client, fresh_spot, example):
    lead = click(client, fresh_spot)
    query = filled(example, lead.click_id)
    response = client.get(f"/api/postbacks/{fresh_spot.postback_token}/tracker-postback{query}")
    assert response.status_code == 200, response.content
    params = dict(parse_qsl(query[1:]))
    word = params.get("tracker.event") or params["goal"]
    # The README: the event is a goal's token or word; sale is a first deposit first.
    expected_goal = fresh_spot.goal_for_word(word).token
    assert response.json()["status"] == "queued"
    intake.decide_all()
    row = IncomingPostback.objects.get(pk=response.json()["id"])
    assert (row.status, row.conversion.goal.token) == ("accepted", expected_goal)
    assert row.warnings == ""
    conversion = row.conversion
    assert conversion.client == lead
    assert conversion.amount == Decimal("50")
    assert conversion.tid == params.get("tracker.tid", "")
    lead.refresh_from_db()
    assert lead.player_id == params.get("playerid", "")


def run_curl(command, base):
    """The command as a user pastes it (the host theirs), through a shell."""
    command = command.replace(README_HOST, base)
    if shutil.which("curl"):
        done = subprocess.run(
            ["bash", "-c", command + " -sS -w '\\n%{http_code}'"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        body, _, code = done.stdout.rpartition("\n")
        return int(code), json.loads(body)
    # No curl here: the same URL, as the shell would pass it to curl.
    url = next(w for w in shlex.split(command) if w.startswith("http"))
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.status, json.loads(answer.read())


@pytest.mark.parametrize("example", [c for c, _ in curl_examples()])
def test_each_curl_example_answers_what_the_readme_shows(client, live_server, example):
    spot = Spot.objects.create(name="Fresh", slug="fresh", target_url="https://p.example/r")
    lead = click(client, spot)
    assert README_HOST in example
    command = example.replace("<token>", str(spot.postback_token))
    command = command.replace("<click id>", lead.click_id)
    code, answer = run_curl(command, live_server.url)
    claimed = dict(curl_examples())[example]
    assert code == 200
    # The row's number is the install's own.
    row = IncomingPostback.objects.get(pk=answer["id"])
    assert {**answer, "id": None} == {**claimed, "id": None}
    intake.decide_all()
    row.refresh_from_db()
    assert row.status == "accepted" and row.conversion.client == lead


def test_the_answer_after_processing_is_the_one_the_readme_shows(client, live_server):
    """The JSON after the curl example's own: the outcome, with the spot's option on."""
    command, _ = curl_examples()[0]
    blocks = [text for kind, text in code_blocks() if kind == "json"]
    claimed = json.loads(next(b for b in blocks if '"conversion"' in b))
    spot = Spot.objects.create(
        name="Fresh", slug="fresh", target_url="https://p.example/r", answer_after_processing=True
    )
    lead = click(client, spot)
    command = command.replace("<token>", str(spot.postback_token))
    code, answer = run_curl(command.replace("<click id>", lead.click_id), live_server.url)
    assert code == 200
    assert {**answer, "conversion": None} == {**claimed, "conversion": None}
    assert Conversion.objects.get(pk=answer["conversion"]).client == lead
