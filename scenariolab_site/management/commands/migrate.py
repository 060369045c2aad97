"""`manage.py migrate` that prepares every database of the profile, not only "default".

The embedded profile keeps the channel layer's messages in a SQLite database of their own: a plain `migrate`
left it without its table, and live pages then waited for ever. Naming `--database` migrates that one only.
"""

from django.conf import settings
from django.core.management.commands.migrate import Command as DjangoMigrate


class Command(DjangoMigrate):
    help = "Migrate every database the profile uses (or only --database), as Django's migrate does for one."

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.set_defaults(database=None)

    def get_check_kwargs(self, options):
        databases = [options["database"]] if options["database"] is not None else list(settings.DATABASES)
        return {**super().get_check_kwargs(options), "databases": databases}

    def handle(self, *args, **options):
        if options["database"] is not None or options.get("app_label"):
            return super().handle(*args, **{**options, "database": options["database"] or "default"})
        for alias in settings.DATABASES:
            if alias != "default" and options["verbosity"] >= 1:
                self.stdout.write(self.style.MIGRATE_HEADING(f"Database {alias!r}:"))
            super().handle(*args, **{**options, "database": alias})
