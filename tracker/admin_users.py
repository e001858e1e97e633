"""The user page: it says when a team member cannot sign in to the admin.

Putting someone in Managers or Team leads, or making them a spot's manager,
gives them nothing while they lack staff status: Django's sign-in refuses
them with the same words as a wrong password. The page says so on saving.
"""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

User = get_user_model()


def team_role(user):
    """The team group or spot a user is a manager of, or ''."""
    group = user.groups.order_by("name").values_list("name", flat=True).first()
    if group:
        return f"in the group {group}"
    spot = user.managed_spots.order_by("name").first()
    return f"a manager of {spot}" if spot else ""


def warn_if_not_staff(request, user):
    if user.is_staff or not user.is_active:
        return
    role = team_role(user)
    if role:
        messages.warning(
            request,
            f"{user.get_username()} is {role} but has no staff status, so cannot sign in "
            "to the admin: tick “Staff status” to let them in.",
        )


admin.site.unregister(User)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)  # groups are saved here
        warn_if_not_staff(request, form.instance)
