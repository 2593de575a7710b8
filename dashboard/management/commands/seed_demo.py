from __future__ import annotations

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from rest_framework.authtoken.models import Token

from inventory.models import Product
from inventory.services import product_create

DEMO_PRODUCTS = [
    ("KB-001", "Mechanical keyboard", "89.00", 50),
    ("MS-002", "Wireless mouse", "29.90", 120),
    ("MN-003", "27-inch monitor", "249.00", 15),
    ("HS-004", "Noise-cancelling headset", "159.00", 30),
    ("CB-005", "USB-C cable", "9.90", 500),
    ("LT-006", "Limited-edition lamp", "59.00", 2),
]
DEMO_USERS = [
    # username, password, staff
    ("admin", "admin-demo-password", True),
    ("alice", "alice-demo-password", False),
]


class Command(BaseCommand):
    help = "Create the demo catalog and demo users (idempotent) and print their credentials."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force", action="store_true", help="seed a PostgreSQL database too (a throwaway demo database only)"
        )

    def handle(self, *args: object, **options: object) -> None:
        # PostgreSQL is what a deployment runs on; a superuser there whose password is in the
        # README is an open door.
        if connection.vendor == "postgresql" and not options["force"]:
            raise CommandError(
                "seed_demo refuses a PostgreSQL database: it creates the superuser admin with the published "
                "password admin-demo-password; create your own with `manage.py createsuperuser`, or add "
                "--force if this database is a throwaway demo"
            )
        created = 0
        for sku, name, price, stock in DEMO_PRODUCTS:
            if not Product.objects.filter(sku=sku).exists():
                product_create(sku=sku, name=name, price=Decimal(price), stock=stock)
                created += 1
        User = get_user_model()
        lines = []
        for username, password, staff in DEMO_USERS:
            user, new = User.objects.get_or_create(
                username=username,
                defaults={"email": f"{username}@example.com", "is_staff": staff, "is_superuser": staff},
            )
            if new:
                user.set_password(password)
                user.save()
            token, _ = Token.objects.get_or_create(user=user)
            role = "staff" if user.is_staff else "customer"
            lines.append(f"  {role:9} {username} / {password}   API token: {token.key}")
        self.stdout.write(f"demo catalog: {created} product(s) created, {len(DEMO_PRODUCTS)} in all")
        self.stdout.write("demo users (password as created; change them outside a demo):")
        self.stdout.write("\n".join(lines))
