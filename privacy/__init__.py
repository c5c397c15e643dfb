"""Privacy layer: accountant, lifetime ledger, DP-SGD, private statistics, reports, vault, audit.

Knows nothing of Flower: every piece can be tested alone and reused by any transport.
"""
