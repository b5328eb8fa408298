"""Check parameters: what a check is parametrised over, with its test id and JUnit properties."""
