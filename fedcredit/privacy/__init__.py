"""Privacy layer: accountant, lifetime ledger, DP-SGD, private statistics, reports, vault, audit.

Knows nothing of Flower: every piece can be tested alone and reused by any transport.
"""

import logging as _logging

# Opacus calls logging.basicConfig(level=DEBUG) when imported, which floods every console
# (and every deployment ClientApp process) with third-party debug lines; an existing root
# handler makes that call a no-op.
if not _logging.getLogger().handlers:
    _logging.getLogger().addHandler(_logging.NullHandler())
