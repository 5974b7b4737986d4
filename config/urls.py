"""URL map. Each app owns its public pages (``<app>/urls.py``) and its API (``<app>/api_urls.py``)."""

from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from ops.views import health, metrics, ready

admin.site.site_header = _("Cible — campaign activation")
admin.site.site_title = _("Cible")
admin.site.index_title = _("Administration")

api_v1 = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("contacts.api_urls")),
    path("", include("consent.api_urls")),
    path("", include("segments.api_urls")),
    path("", include("activation.api_urls")),
    path("", include("experiments.api_urls")),
]

urlpatterns = [
    path("", include("ops.urls")),
    path("healthz", health, name="health"),
    path("readyz", ready, name="ready"),
    path("metrics", metrics, name="metrics"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("", include("contacts.urls")),
    path("", include("consent.urls")),
    path("", include("segments.urls")),
    path("", include("activation.urls")),
    path("", include("experiments.urls")),
]
