from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SegmentsMlConfig(AppConfig):
    """ML clusters, a separate app label (``segments_ml``) inside the segments package."""

    name = "segments.ml"
    label = "segments_ml"
    verbose_name = _("ML clusters")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from segments.ml import conditions, receivers  # noqa: F401 - connects the receivers

        conditions.register()
