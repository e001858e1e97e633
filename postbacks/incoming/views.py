from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from postbacks.incoming import process as work


@csrf_exempt
@transaction.non_atomic_requests  # the raw row must commit before processing starts
def incoming(request, token):
    """GET or POST /api/postbacks/<token>/tracker-postback: what networks call.

    Every method is let in so that every request is stored; another one than
    GET or POST is then answered 405 (its outcome says so).
    """
    outcome = work.answer(request, token)
    if outcome.ok and outcome.plain:
        return HttpResponse(outcome.plain, content_type="text/plain; charset=utf-8")
    response = JsonResponse(outcome.payload(), status=outcome.http_status)
    if outcome.http_status == 405:
        response["Allow"] = ", ".join(work.METHODS)
    return response
