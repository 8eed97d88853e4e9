"""Studies on top of single runs: catalyst comparison, fitting, effective properties."""
