"""Stage 6, the protocol in time: one step at a time with adaptive dt and cut-off landing."""
