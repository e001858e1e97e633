from django.urls import path

from crm import views

urlpatterns = [
    path("go/<slug:slug>", views.go, name="go"),
    path("api/clients", views.api_clients, name="api-clients"),
]
