from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SegmentsConfig(AppConfig):
    name = "segments"
    verbose_name = _("Segments")

    def ready(self) -> None:
        from segments import receivers  # noqa: F401 - connects the signal receivers
        from segments.rules.conditions import register_builtin_conditions

        register_builtin_conditions()
