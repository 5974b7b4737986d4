from django.urls import path

from contacts import views

urlpatterns = [
    path("webhooks/<slug:provider>/", views.webhook, name="contacts-webhook"),
    path("t/e", views.track, name="contacts-track"),
]
