"""What people see: the command line, the coverage dashboard, the quarantine page, published reports, alerts.

The top layer: each module here may use every capability below; none imports another's insides.
"""

from __future__ import annotations
