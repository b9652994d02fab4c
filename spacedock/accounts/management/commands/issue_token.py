from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from spacedock.accounts.models import AccessToken
from spacedock.accounts.names import username_problem
from spacedock.accounts.views import sign_in_path
from spacedock.spaces.models import NAME_RE


class Command(BaseCommand):
    help = (
        "Creates the user if missing, prints a link where the user chooses a password for the web UI, "
        "and a new write token as the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="a label for the token")
        parser.add_argument("--scope", choices=["read", "write"], default="write")
        parser.add_argument("--no-link", action="store_true", help="do not print a sign-in link")

    def handle(self, username, name, scope, no_link=False, **options):
        if not NAME_RE.fullmatch(username):
            raise CommandError(
                f"{username!r} is not a valid username: use letters, digits, '.', '_' or '-', "
                "starting with a letter or digit, at most 96 characters"
            )
        if not User.objects.filter(username=username).exists() and (problem := username_problem(username)):
            raise CommandError(problem)
        if User.objects.filter(username=username, organization__isnull=False).exists():
            raise CommandError(f"{username} is an organization: issue a token to one of its members instead")
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
            user.save()
            self.stderr.write(f"created user {username}")
        if not no_link:
            # On stderr, so that stdout stays the token alone for scripts (`token=$(... issue_token x)`).
            self.stderr.write(
                f"{username} signs in to the web UI after choosing a password at "
                f"{settings.SITE_URL}{sign_in_path(user)} (works once, for "
                f"{settings.PASSWORD_RESET_TIMEOUT // 86400} days)"
            )
        _, raw = AccessToken.issue(user, name=name, scope=scope)
        self.stdout.write(raw)
