"""A preset's outgoing postback sends the conversion's real status in the
receiver's words: a chargeback reaches the team's Keitaro as rejected, never
as a sale (issue 22, point 1); load_presets refuses a preset that writes a
fixed status or a word of another status."""

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import CommandError, call_command

from crm.models import Client
from postbacks.models import OutgoingPostback
from tests.receiver import drain
from tracker.models import PartnerPreset, Spot
from tracker.presets import apply_preset, preset_files

pytestmark = pytest.mark.usefixtures("outgoing")


def keitaro_calls(client, partner, lead, status, tid, payout="55.50"):
    """What a Keitaro network does: calls the preset's deposit URL, macros filled."""
    url = partner.postbacks.get(name="First Deposit").incoming_url()
    values = {
        "{subid}": lead.click_id,
        "{status}": status,
        "{payout}": payout,
        "{currency}": "USD",
        "{tid}": tid,
    }
    for macro, value in values.items():
        url = url.replace(macro, value)
    answer = client.get(url)
    assert answer.status_code == 200, answer.content
    drain()


def received(receiver):
    got = [(urlsplit(r.path).path, parse_qs(urlsplit(r.path).query)) for r in receiver.requests]
    receiver.requests.clear()
    return got


def test_a_rejected_deposit_reaches_the_teams_keitaro_as_rejected(client, spot, presets, receiver):
    partner = apply_preset(presets["keitaro"], spot, outgoing_base=receiver.url + "/k")
    lead = Client.objects.create(spot=spot, cl_id="kt-1")

    keitaro_calls(client, partner, lead, "rejected", "t1")
    [(path, query)] = received(receiver)
    assert path == "/k/postback"
    assert query == {
        "subid": ["kt-1"],
        "status": ["rejected"],
        "payout": ["55.50"],
        "currency": ["USD"],
        "tid": ["t1"],
    }

    keitaro_calls(client, partner, lead, "sale", "t2", payout="20")
    [(_, query)] = received(receiver)
    assert (query["status"], query["payout"], query["tid"]) == (["sale"], ["20.00"], ["t2"])

    keitaro_calls(client, partner, lead, "lead", "t3")
    [(_, query)] = received(receiver)
    assert query["status"] == ["lead"]  # pending, in Keitaro's word


def test_an_approved_deposit_charged_back_later_is_sent_as_rejected(
    client, spot, presets, receiver
):
    partner = apply_preset(presets["keitaro"], spot, outgoing_base=receiver.url + "/k")
    lead = Client.objects.create(spot=spot, cl_id="kt-2")
    keitaro_calls(client, partner, lead, "sale", "t1")
    keitaro_calls(client, partner, lead, "rejected", "t1")  # the same deposit, charged back
    statuses = [query["status"] for _, query in received(receiver)]
    assert statuses == [["sale"], ["rejected"]]


def test_the_preset_postback_carries_status_words_and_required_macros(spot, presets):
    partner = apply_preset(presets["keitaro"], spot, outgoing_base="https://k.example.com/abc")
    postback = OutgoingPostback.objects.get(partner=partner)
    assert "status={status}" in postback.url
    assert "status=sale" not in postback.url
    assert postback.status_words.splitlines() == [
        "approved = sale",
        "pending = lead",
        "rejected = rejected",
    ]
    assert postback.required_macros == "cl_id"
    assert (postback.send_approved, postback.send_pending, postback.send_rejected) == (
        True,
        True,
        True,
    )


def test_every_shipped_preset_with_an_outgoing_postback_sends_the_status_in_words(db):
    for path in preset_files():
        data = json.loads(path.read_text())
        spec = data.get("outgoing")
        if not spec:
            continue
        assert "{status}" in spec["path"], path.name
        words = dict(
            (s.strip(), w.strip())
            for s, w in (line.split("=") for line in spec["status_words"].splitlines())
        )
        assert set(words) == {"approved", "pending", "rejected"}, path.name
        assert spec["required_macros"], path.name


def write_preset(tmp_path, **outgoing):
    data = json.loads((preset_files()[0].parent / "keitaro.json").read_text())
    data["outgoing"].update(outgoing)
    (tmp_path / "keitaro.json").write_text(json.dumps(data))


def refused(tmp_path, text):
    with pytest.raises(CommandError) as e:
        call_command("load_presets", dir=str(tmp_path), verbosity=0)
    assert text in str(e.value)
    assert not PartnerPreset.objects.exists()


def test_load_presets_refuses_a_fixed_status_in_the_url(db, tmp_path):
    write_preset(tmp_path, path="/postback?subid={cl_id}&status=sale&payout={sum}")
    refused(
        tmp_path,
        "keitaro.json: the outgoing postback writes status=sale as a fixed word in its path: "
        "every event it sends (approved, pending, rejected) would reach the receiver as 'sale'",
    )


def test_load_presets_refuses_a_fixed_status_in_a_json_body(db, tmp_path):
    write_preset(tmp_path, body='{"click": "{cl_id}", "conversion_status": "approved"}')
    refused(tmp_path, "writes conversion_status=approved as a fixed word in its body")


def test_load_presets_refuses_a_status_word_of_another_status(db, tmp_path):
    write_preset(tmp_path, status_words="approved = sale\npending = lead\nrejected = sale")
    refused(tmp_path, "'sale' means approved: a rejected conversion would reach the receiver")


def test_load_presets_refuses_a_status_without_the_receivers_word(db, tmp_path):
    write_preset(tmp_path, status_words="approved = sale")
    refused(tmp_path, "gives no receiver's word for pending, rejected")


def test_load_presets_refuses_a_sale_word_sent_for_every_status(db, tmp_path):
    write_preset(tmp_path, path="/postback?subid={cl_id}&type=sale&status={status}")
    refused(tmp_path, "writes type=sale (approved) in its path, but it also sends pending")
    # The same word is what an approved-only postback means: loaded, and applied as such.
    write_preset(tmp_path, path="/postback?subid={cl_id}&type=sale", statuses=["approved"])
    call_command("load_presets", dir=str(tmp_path), verbosity=0)
    preset = PartnerPreset.objects.get()
    spot = Spot.objects.create(name="Bot", slug="bot")
    partner = apply_preset(preset, spot, outgoing_base="https://k.example.com/abc")
    postback = OutgoingPostback.objects.get(partner=partner)
    assert (postback.send_approved, postback.send_pending, postback.send_rejected) == (
        True,
        False,
        False,
    )


def test_load_presets_refuses_an_unknown_required_macro(db, tmp_path):
    write_preset(tmp_path, required_macros="cl_id, subid")
    refused(tmp_path, "'required_macros' names unknown macros: subid")
