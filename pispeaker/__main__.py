"""Run the command line: ``python -m pispeaker``."""

from pispeaker.cli import main

raise SystemExit(main())
