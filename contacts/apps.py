from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def default_aliases_ensure(sender, **kwargs) -> None:
    """Re-create missing default aliases after every migrate (also after ``flush``, which empties
    tables and re-runs post_migrate); aliases edited by administrators are kept."""
    from importlib import import_module

    from django.apps import apps

    import_module("contacts.migrations.0004_default_aliases").seed(apps, None)


class ContactsConfig(AppConfig):
    name = "contacts"
    verbose_name = _("Contacts")

    def ready(self) -> None:
        post_migrate.connect(default_aliases_ensure, sender=self, dispatch_uid="contacts-aliases")
