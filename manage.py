#!/usr/bin/env python
"""Django's command-line utility for extadmin."""
import os
import sys
from pathlib import Path


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "extadmin.settings")
    try:
        from django.core.management import execute_from_command_line
    except ImportError:
        # Run by an interpreter without extadmin's packages (e.g. the system python3): use the
        # project's virtualenv made by scripts/setup, if there is one.
        venv = Path(__file__).resolve().parent / ".venv"
        venv_python = venv / "bin" / "python"
        if venv_python.exists() and Path(sys.prefix).resolve() != venv.resolve():
            os.execv(str(venv_python), [str(venv_python), *sys.argv])  # noqa: S606 (our own venv)
        raise
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
