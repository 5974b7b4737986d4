from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = _("Experiments")

    def ready(self) -> None:
        from experiments import hooks, receivers  # noqa: F401 — connects the receivers

        hooks.register_with_activation()
