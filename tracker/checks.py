"""Deployment checks of sign-in (`manage.py check --deploy`)."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def second_factor(app_configs, **kwargs):
    """Superusers and team leads move the team's money events: in production
    their password alone should not be enough."""
    if settings.TWO_FACTOR_REQUIRED:
        return []
    return [
        Warning(
            "TWO_FACTOR_REQUIRED is off: superusers and team leads sign in with a password alone.",
            hint="Set TWO_FACTOR_REQUIRED=true once they have set up a second factor "
            "(the admin's “Two-factor sign-in” page).",
            id="tracker.W001",
        )
    ]
