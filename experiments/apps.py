from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = _("Experiments")

    def ready(self) -> None:
        from experiments import integration, receivers  # noqa: F401 — connects the receivers

        integration.register_with_activation()
