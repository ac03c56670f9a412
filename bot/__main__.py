"""`python -m bot` is the `pushops` command."""

from bot.cli import main

raise SystemExit(main())
