from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from tracker.metrics import metrics_view
from tracker.views import demo_receiver

admin.site.site_header = "Postback tracker"
admin.site.site_title = "Postback tracker"
admin.site.index_title = "Configuration"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("", include("postbacks.urls")),
    path("", include("crm.urls")),
    path("demo/receiver", demo_receiver, name="demo-receiver"),
    path("metrics", metrics_view, name="metrics"),
]
