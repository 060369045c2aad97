#!/usr/bin/env python
"""Django's command-line utility for Scenario Lab."""

import atexit
import gc
import os
import sys


def main() -> None:
    # At exit the interpreter's last garbage collections walk every object start-up made (Django, pydantic
    # models, the engine): ~0.3 s of a `--help`. Freezing them first skips those walks; what is still alive
    # at exit is freed by the process ending, and refcounted objects are still released as modules clear.
    atexit.register(gc.freeze)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scenariolab_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
