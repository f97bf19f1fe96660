"""Private helpers shared by several methods (skipped by registry discovery)."""
