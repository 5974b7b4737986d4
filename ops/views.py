from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.shortcuts import render


def health(request: HttpRequest) -> JsonResponse:
    """Liveness + database reachability, for load balancers and docker-compose healthchecks."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok", "database": connection.vendor})


def home(request: HttpRequest):
    return render(request, "ops/home.html")
