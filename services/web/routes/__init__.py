"""HTTP routes of the web front, one module per area."""
