"""The demo's logins (lead, raters, engineer) and the simulated crowd's accounts."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import get_hasher, identify_hasher, make_password
from django.contrib.auth.models import User
from django.utils.crypto import salted_hmac

from demo import crowd as crowd_model
from labeling import services as labeling_services
from labeling.models import Invite, Project, Role


@dataclass(frozen=True)
class DemoPerson:
    username: str
    role: str
    is_staff: bool = False


DEMO_PEOPLE: tuple[DemoPerson, ...] = (
    DemoPerson("lead", Role.LEAD, is_staff=True),
    DemoPerson("rater1", Role.RATER),
    DemoPerson("rater2", Role.RATER),
    DemoPerson("rater3", Role.RATER),
    DemoPerson("engineer", Role.ENGINEER),
)


def demo_people_ensure(*, password: str) -> dict[str, User]:
    """The demo logins, created or reset: password, staff flag, active."""
    users = {}
    salt = _demo_password_salt(password)
    encoded: str | None = None
    for person in DEMO_PEOPLE:
        user, _ = get_user_model().objects.get_or_create(username=person.username)
        changed = []
        if not _has_demo_password(user, salt=salt):
            # One hash (about a second) for all five logins: the password is public anyway.
            encoded = encoded or make_password(password, salt=salt)
            user.password = encoded
            changed.append("password")
        if user.is_staff != person.is_staff or not user.is_active:
            user.is_staff, user.is_active = person.is_staff, True
            changed += ["is_staff", "is_active"]
        if changed:
            user.save(update_fields=changed)
        users[person.username] = user
    return users


def _demo_password_salt(password: str) -> str:
    """A salt derived from the password (keyed with SECRET_KEY), so a re-run can see that a
    login already has this password without hashing it again, and sessions stay valid."""
    return salted_hmac("ranklab.demo.password", password, algorithm="sha256").hexdigest()[:22]


def _has_demo_password(user: User, *, salt: str) -> bool:
    try:
        hasher = identify_hasher(user.password)
        decoded = hasher.decode(user.password)
    except (ValueError, NotImplementedError):  # unusable or unknown: set it
        return False
    return (
        hasher.algorithm == get_hasher().algorithm
        and decoded.get("salt") == salt
        and not hasher.must_update(user.password)
    )


def crowd_users_ensure() -> dict[str, User]:
    """The simulated crowd's accounts; they never log in, so they have no usable password."""
    users = {}
    for profile in crowd_model.CROWD:
        user, created = get_user_model().objects.get_or_create(username=profile.username)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        users[profile.username] = user
    return users


def demo_invite_ensure(*, project: Project, lead: User) -> Invite:
    """A usable rater invite of the lead's, reused on re-runs rather than piled up."""
    for invite in Invite.objects.filter(project=project, created_by=lead, role=Role.RATER):
        if invite.max_uses is None and invite.is_usable():
            return invite
    return labeling_services.invite_create(project=project, created_by=lead, role=Role.RATER)
