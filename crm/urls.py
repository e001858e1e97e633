from django.urls import path

from crm import report_api, views

urlpatterns = [
    path("go/<slug:slug>", views.go, name="go"),
    path("api/clients", views.api_clients, name="api-clients"),
    path("api/report", report_api.report_api, name="api-report"),
]
