"""Check parameters: what a check runs once per, with its JUnit properties (one module per area)."""
