from django.urls import path

from consent.api import ConsentBulkApi, ConsentSummaryApi

urlpatterns = [
    path("consents/bulk", ConsentBulkApi.as_view(), name="consents-bulk"),
    path("consents/<str:external_id>", ConsentSummaryApi.as_view(), name="consent-summary"),
]
