"""`python -m sloth_runner` is the same as the `sloth-runner` command."""

from sloth_runner.cli.main import main

raise SystemExit(main())
