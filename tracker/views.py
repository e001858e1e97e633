from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def demo_receiver(request):
    """Answers OK to anything: the target of load_demo's outgoing postback."""
    return HttpResponse("OK", content_type="text/plain")
