from django.urls import path

from postbacks import views

urlpatterns = [
    path(
        "api/postbacks/<str:token>/tracker-postback",
        views.incoming,
        name="incoming-postback",
    ),
]
