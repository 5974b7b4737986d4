from django.urls import path

from experiments import views

app_name = "experiments"

urlpatterns = [
    path("experiments/<int:pk>/results/", views.results_page, name="results"),
    path("experiments/<int:pk>/results.csv", views.results_csv, name="results-csv"),
    path("experiments/plan/", views.sample_plan_page, name="plan"),
]
