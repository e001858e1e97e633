"""Keitaro postbacks made by the preset before status words send {status}.

Their locked URL wrote status=sale, so a rejected or pending deposit reached
the team's Keitaro as a sale, and the admin cannot edit a locked URL. Only
URLs that still read exactly as the preset wrote them are changed.
"""

from django.db import migrations

OLD = "&status=sale&payout={sum}"
NEW = "&status={status}&payout={sum}"
WORDS = "approved = sale\npending = lead\nrejected = rejected"


def forwards(apps, schema_editor):
    OutgoingPostback = apps.get_model("postbacks", "OutgoingPostback")
    made = OutgoingPostback.objects.filter(
        locked=True, partner__preset="keitaro", url__contains="/postback?subid={cl_id}" + OLD
    )
    for postback in made:
        postback.url = postback.url.replace(OLD, NEW)
        postback.status_words = postback.status_words or WORDS
        postback.required_macros = postback.required_macros or "cl_id"
        postback.save(update_fields=["url", "status_words", "required_macros"])


def backwards(apps, schema_editor):
    OutgoingPostback = apps.get_model("postbacks", "OutgoingPostback")
    for postback in OutgoingPostback.objects.filter(
        locked=True, partner__preset="keitaro", url__contains=NEW
    ):
        postback.url = postback.url.replace(NEW, OLD)
        postback.save(update_fields=["url"])


class Migration(migrations.Migration):
    dependencies = [("postbacks", "0007_receiver_words_and_retrying")]
    operations = [migrations.RunPython(forwards, backwards)]
