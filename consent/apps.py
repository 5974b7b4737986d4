from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = _("Consent")

    def ready(self) -> None:
        from consent import receivers
        from consent.selectors import consent_summary
        from consent.services import is_erased_identity
        from contacts import hooks, signals

        signals.events_ingested.connect(
            receivers.on_events_ingested, dispatch_uid="consent-events-ingested"
        )
        signals.contacts_merged.connect(
            receivers.on_contacts_merged, dispatch_uid="consent-contacts-merged"
        )
        signals.demo_population_loaded.connect(
            receivers.on_demo_population_loaded, dispatch_uid="consent-demo-population"
        )
        # Ingestion refuses to re-create an erased person; the contact API shows consent.
        if is_erased_identity not in hooks.identity_blockers:
            hooks.identity_blockers.append(is_erased_identity)
        hooks.contact_detail_sections["consent"] = consent_summary
        from django.db.models.signals import post_migrate

        from consent.purposes import default_purposes_ensure

        post_migrate.connect(default_purposes_ensure, sender=self, dispatch_uid="consent-purposes")
