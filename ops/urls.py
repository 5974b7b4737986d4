from django.urls import path

from ops.views import home

urlpatterns = [path("", home, name="home")]
