"""Check parameters: what a check runs once for (a zone, a mail domain...), per area.

Each target has the `id` that ends the test id and the JUnit properties that
describe it (`junit_properties()`); the plugin attaches those to the testcase.
"""
