"""Default aliases: French and English spellings of the built-in event types and categories,
and the canonical spelling of common French-speaking cities. Editable in the admin."""

from django.db import migrations

EVENT_TYPES = {
    "achat": "purchase",
    "commande": "purchase",
    "order": "purchase",
    "order_completed": "purchase",
    "vente": "purchase",
    "pageview": "page_view",
    "page_vue": "page_view",
    "vue_page": "page_view",
    "panier": "cart_updated",
    "add_to_cart": "cart_updated",
    "ajout_panier": "cart_updated",
    "ouverture_email": "email_open",
    "email_opened": "email_open",
    "clic_email": "email_click",
    "email_clicked": "email_click",
    "ouverture_app": "app_open",
    "desabonnement": "unsubscribe",
    "unsubscribed": "unsubscribe",
}
CATEGORIES = {
    "chaussures": "shoes",
    "chaussure": "shoes",
    "shoe": "shoes",
    "vetements": "clothing",
    "vetement": "clothing",
    "habillement": "clothing",
    "clothes": "clothing",
    "beaute": "beauty",
    "cosmetiques": "beauty",
    "maison": "home",
    "deco": "home",
    "electronique": "electronics",
    "high_tech": "electronics",
    "livres": "books",
    "livre": "books",
    "book": "books",
    "sport": "sports",
    "alimentation": "food",
    "epicerie": "food",
}
CITIES = {
    "Paris": "Paris",
    "Lyon": "Lyon",
    "Marseille": "Marseille",
    "Toulouse": "Toulouse",
    "Nice": "Nice",
    "Nantes": "Nantes",
    "Strasbourg": "Strasbourg",
    "Montpellier": "Montpellier",
    "Bordeaux": "Bordeaux",
    "Lille": "Lille",
    "Rennes": "Rennes",
    "Saint-Étienne": "Saint-Étienne",
    "Saint-Denis": "Saint-Denis",
    "Bruxelles": "Bruxelles",
    "Brussels": "Bruxelles",
    "Genève": "Genève",
    "Geneva": "Genève",
    "Montréal": "Montréal",
    "Fort-de-France": "Fort-de-France",
    "London": "London",
    "Londres": "London",
    "Aix-en-Provence": "Aix-en-Provence",
    "Boulogne-Billancourt": "Boulogne-Billancourt",
    "Clermont-Ferrand": "Clermont-Ferrand",
}


def seed(apps, schema_editor):
    from contacts.normalisation import alias_key, city_key

    Alias = apps.get_model("contacts", "Alias")
    rows = [Alias(kind="event_type", alias=a, key=alias_key(a), canonical=c) for a, c in EVENT_TYPES.items()]
    rows += [Alias(kind="category", alias=a, key=alias_key(a), canonical=c) for a, c in CATEGORIES.items()]
    rows += [Alias(kind="city", alias=a, key=city_key(a), canonical=c) for a, c in CITIES.items()]
    Alias.objects.bulk_create(rows, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [("contacts", "0003_ingestion")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
