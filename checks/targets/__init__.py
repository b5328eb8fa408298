"""Check parameters: what a check runs once per (an endpoint, a vhost, a device...).

Each target carries its readable test id (`imaps-993-old`) and the JUnit
properties CI shows for it; the probes take the plain values inside.
"""
