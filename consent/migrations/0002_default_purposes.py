"""Default purposes: newsletter, promotions, product updates (consent), transactional
(contract) and profiling for segmentation (legitimate interest, objection under Art. 21)."""

from django.db import migrations

PURPOSES = [
    {
        "code": "newsletter",
        "name_fr": "Lettre d'information",
        "name_en": "Newsletter",
        "description_fr": "Nos actualités et conseils, une à deux fois par mois.",
        "description_en": "Our news and tips, once or twice a month.",
        "legal_basis": "consent",
        "channels": ["email", "sms", "push"],
        "position": 10,
    },
    {
        "code": "promotions",
        "name_fr": "Offres promotionnelles",
        "name_en": "Promotional offers",
        "description_fr": "Soldes, codes promo et ventes privées.",
        "description_en": "Sales, discount codes and private sales.",
        "legal_basis": "consent",
        "channels": ["email", "sms", "push"],
        "position": 20,
    },
    {
        "code": "product_updates",
        "name_fr": "Nouveautés produits",
        "name_en": "Product updates",
        "description_fr": "Nouveaux produits et retours en stock.",
        "description_en": "New products and items back in stock.",
        "legal_basis": "consent",
        "channels": ["email", "sms", "push"],
        "position": 30,
    },
    {
        "code": "transactional",
        "name_fr": "Messages liés à vos commandes",
        "name_en": "Messages about your orders",
        "description_fr": "Confirmations de commande et de livraison (nécessaires au contrat).",
        "description_en": "Order and delivery confirmations (needed to perform the contract).",
        "legal_basis": "contract",
        "channels": ["email", "sms", "push"],
        "email_double_opt_in": False,
        "shown_in_preference_centre": False,
        "position": 40,
    },
    {
        "code": "profiling",
        "name_fr": "Personnalisation et profilage",
        "name_en": "Personalisation and profiling",
        "description_fr": "Analyse de vos achats pour vous proposer des offres adaptées.",
        "description_en": "Analysis of your purchases to suggest relevant offers.",
        "legal_basis": "legitimate_interest",
        "channels": ["any"],
        "email_double_opt_in": False,
        "position": 50,
    },
]


def create_purposes(apps, schema_editor):
    Purpose = apps.get_model("consent", "Purpose")
    for data in PURPOSES:
        Purpose.objects.get_or_create(code=data["code"], defaults=data)


class Migration(migrations.Migration):
    dependencies = [("consent", "0001_initial")]

    operations = [migrations.RunPython(create_purposes, migrations.RunPython.noop)]
