"""Stage 8, outputs: tables and summaries, fields for ParaView, plots, the terminal."""
