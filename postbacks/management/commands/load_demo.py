"""Demo data: a spot with goals, fields, a partner, links, clients and conversions."""

import datetime
import random
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from crm import stats
from crm.models import Client, Conversion, CustomField, Message
from postbacks.delivery.attempts import resend
from postbacks.delivery.fanout import create_deliveries
from postbacks.models import Delivery, OutgoingPostback
from tracker.models import Goal, PartnerPreset, Spot
from tracker.presets import apply_preset, load_presets

DEMO_SLUG = "demo"
CAMPAIGNS = ["fb-summer-01", "fb-summer-02", "tt-slots-07"]
GEOS = ["DE", "BR", "IN", "PL"]
RECEIVER_NAME = "Local receiver"
NAMES = ["Anna", "Bruno", "Chen", "Daria", "Emil", "Fatima", "Goran", "Hana", "Ivan", "Julia"]


def demo_url(receiver):
    return receiver + "?click_id={click_id}&action={action}&sum={sum}&tid={tid}"


class Command(BaseCommand):
    help = "Load a demo spot with clients, conversions and postbacks, to see the product work."

    def add_arguments(self, parser):
        parser.add_argument("--clients", type=int, default=60)
        parser.add_argument(
            "--receiver",
            default="http://127.0.0.1:8000/demo/receiver",
            help="Where the demo outgoing postback goes (a local receiver by default).",
        )

    def handle(self, *args, **options):
        load_presets()
        if Spot.objects.filter(slug=DEMO_SLUG).exists():
            self.follow(options["receiver"])
            self.stdout.write("The demo spot exists already; nothing loaded.")
            return
        with transaction.atomic():
            spot = self.make_spot(options["receiver"])
            made = self.make_clients(spot, options["clients"], random.Random(5))
            stats.rebuild_spot(spot.pk)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo loaded: spot '{spot}' with {made[0]} clients and {made[1]} conversions. "
                "See CRM › Statistics and CRM › Clients in the admin."
            )
        )

    def follow(self, receiver):
        """Served on another address this time: the demo's postback follows it,
        and what it could not deliver before is due again."""
        url = demo_url(receiver)
        for postback in OutgoingPostback.objects.filter(spot__slug=DEMO_SLUG, name=RECEIVER_NAME):
            if postback.url != url:
                postback.url = url
                postback.save()
                resend(postback.deliveries.exclude(status=Delivery.SUCCESS))
                self.stdout.write(f"The demo postback now goes to {receiver}.")

    def make_spot(self, receiver):
        spot = Spot.objects.create(
            name="Demo casino bot",
            slug=DEMO_SLUG,
            target_url="https://example.com/welcome?click={{tracker.clickid}}",
        )
        spot.goals.filter(token__in=["dep", "redep"]).update(
            show_sum=True, message_template="Deposit {sum} {currency}"
        )
        Goal.objects.create(spot=spot, name="Withdrawal", token="withdrawal", show_sum=True)
        for key, label, kind in [
            ("last_deposit", "Last deposit", CustomField.MONEY),
            ("user_id", "Partner user id", CustomField.TEXT),
            ("country", "Country", CustomField.TEXT),
        ]:
            CustomField.objects.create(spot=spot, key=key, label=label, type=kind)
        preset = PartnerPreset.objects.get(slug="1win")
        apply_preset(
            preset, spot, registration_url="https://1wprde.com/casino/list?open=register&p=demo"
        )
        OutgoingPostback.objects.create(
            spot=spot, name=RECEIVER_NAME, url=demo_url(receiver), all_users=True
        )
        return spot

    def make_clients(self, spot, count, rnd):
        now = timezone.now()
        conversions = 0
        for n in range(count):
            created = now - datetime.timedelta(days=rnd.randint(0, 12), hours=rnd.randint(0, 20))
            client = Client.objects.create(
                spot=spot,
                name=rnd.choice(NAMES),
                user_id=100000 + n,
                geo=rnd.choice(GEOS),
                advert_campaign_id=rnd.choice(CAMPAIGNS),
                params={"utm_source": "facebook"},
            )
            Client.objects.filter(pk=client.pk).update(created=created)
            events = self.events_for(rnd)
            for k, (word, amount) in enumerate(events):
                conversion, _ = client.record_conversion(word, amount, "USD", tid=f"d{n}-{k}")
                at = created + datetime.timedelta(hours=2 + 20 * k)
                Conversion.objects.filter(pk=conversion.pk).update(created=min(at, now))
                if amount:
                    Message.objects.create(
                        client=client,
                        kind=Message.SYSTEM,
                        text=f"Deposit {amount} USD",
                        conversion=conversion,
                    )
                if n >= count - 5:
                    create_deliveries(conversion)
                conversions += 1
            if events:
                Message.objects.create(
                    client=client, kind=Message.MANAGER, text="Sent the registration link."
                )
        return count, conversions

    def events_for(self, rnd):
        if rnd.random() > 0.6:
            return []
        events = [("registration", None)]
        if rnd.random() < 0.45:
            events.append(("sale", Decimal(rnd.choice([20, 30, 50, 100]))))
            for _ in range(rnd.randint(0, 2)):
                events.append(("sale", Decimal(rnd.choice([25, 40, 75]))))
        return events
