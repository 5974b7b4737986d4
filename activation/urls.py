from django.urls import path

from activation import views

app_name = "activation"

urlpatterns = [
    path("t/o/<str:token>.gif", views.open_pixel, name="open"),
    path("t/c/<str:token>", views.click_redirect, name="click"),
]
