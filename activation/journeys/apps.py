from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class JourneysConfig(AppConfig):
    """Schedules, triggers and multi-step workflows of campaigns (a sub-app of activation)."""

    name = "activation.journeys"
    label = "journeys"
    verbose_name = _("Campaign schedules and workflows")

    def ready(self) -> None:
        from activation.journeys import receivers  # noqa: F401  (connects the signal receivers)
