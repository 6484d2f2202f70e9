"""Tables and figures of the paper, built from result files only."""
