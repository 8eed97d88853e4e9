"""Run one case file: `python run_case.py CASE.toml [--out DIR] [--check]` (see --help)."""
from fem.cli import main
raise SystemExit(main())
