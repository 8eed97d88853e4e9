"""Run one case file: `python run_case.py CASE.toml [--out DIR] [--check]`, the short form of
`asslsb-fem run CASE.toml` (see --help; fem/cli.py legacy_main maps the flags onto the commands)."""
from fem.cli import legacy_main

raise SystemExit(legacy_main())
