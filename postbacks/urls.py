from django.urls import path

from postbacks import health
from postbacks.incoming import views

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path(
        "api/postbacks/<str:token>/tracker-postback",
        views.incoming,
        name="incoming-postback",
    ),
]
