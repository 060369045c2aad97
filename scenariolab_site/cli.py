"""`scenario-lab`: the terminal commands under short names (`scenario-lab run ai-summit` is `manage.py run_scenario ai-summit`).

Each subcommand runs its management command exactly as manage.py would (same parser, help, output and exit
codes); only the name in the usage line differs.
"""

from __future__ import annotations

import os
import sys

PROG = "scenario-lab"
SUBCOMMANDS = {
    "run": "run_scenario",
    "validate": "validate_scenario",
    "estimate": "estimate_scenario",
    "compare": "compare_runs",
}
BAD_INPUT = 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        out = sys.stdout if argv else sys.stderr
        out.write(usage())
        return 0 if argv else BAD_INPUT
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        sys.stderr.write(f"{PROG}: unknown command {name!r}: choose one of {', '.join(SUBCOMMANDS)} (see {PROG} --help)\n")
        return BAD_INPUT
    command = _command(SUBCOMMANDS[name])
    # What ManagementUtility does for `manage.py NAME ...`: the parser's usage line reads "scenario-lab NAME".
    command.run_from_argv([PROG, name, *rest])
    return 0


def usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    rows = [f"  {name:<{width}}  {_command(command).help}" for name, command in SUBCOMMANDS.items()]
    return "\n".join([
        f"usage: {PROG} COMMAND [ARGS ...]",
        "",
        "Scenario Lab in the terminal; each command is the manage.py command of the same purpose.",
        "",
        "commands:",
        *rows,
        "",
        f"`{PROG} COMMAND --help` lists a command's options.",
        "",
    ])


def _command(name: str):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scenariolab_site.settings")
    import django
    from django.core.management import get_commands, load_command_class

    django.setup()
    return load_command_class(get_commands()[name], name)


if __name__ == "__main__":
    sys.exit(main())
