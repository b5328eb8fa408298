"""Outbound mail, observed: SPF, reverse DNS, DKIM keys and MX preferences of the mail domains.

Semantics: docs/semantics.md, "Outbound deliverability". Every name is asked
of the authoritative servers of the inventory zone it belongs to, and an
answer counts only when they agree (`lookup`). SPF is evaluated by pyspf
(`spf`), reverse DNS forward-confirmed (`reverse`), DKIM key records parsed
by dkimpy and compared with the new host's signing key (`dkim`), MX
preferences read (`mx`).
"""
