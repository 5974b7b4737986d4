from django.urls import path

from experiments.api import ExperimentResultsApi

urlpatterns = [
    path(
        "experiments/<int:pk>/results",
        ExperimentResultsApi.as_view(),
        name="experiment-results-api",
    ),
]
