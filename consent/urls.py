from django.urls import path

from consent import views

app_name = "consent"

urlpatterns = [
    path("consent/unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("consent/confirm/<str:token>/", views.confirm, name="confirm"),
    path("consent/preferences/<str:token>/", views.preferences, name="preferences"),
]
