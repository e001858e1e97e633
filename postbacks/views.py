from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def incoming(request, token):
    return JsonResponse(
        {"ok": False, "error": "The incoming endpoint is not built yet."}, status=503
    )
