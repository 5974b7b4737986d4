from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = _("Consent")

    def ready(self) -> None:
        from consent import receivers
        from contacts import signals

        signals.events_ingested.connect(
            receivers.on_events_ingested, dispatch_uid="consent-events-ingested"
        )
        signals.contacts_merged.connect(
            receivers.on_contacts_merged, dispatch_uid="consent-contacts-merged"
        )
        signals.demo_population_loaded.connect(
            receivers.on_demo_population_loaded, dispatch_uid="consent-demo-population"
        )
