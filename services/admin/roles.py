"""The role policy of the admin API, in one place: which roles each kind of route accepts.

Every admin route is mounted with ``require(tokens, <one of these sets>, endpoint)``; a route under
``/api/v1`` without a declared policy is refused at start-up and fails the route enumeration test
(``tests/integration/admin/test_route_policy.py``).

* ``admin``: everything.
* ``analyst``: read-only: profile reads, segment and analytics reads. No writes, no privacy export
  or erasure, no tokens or keys.
* ``privacy_officer``: the privacy routes (``/api/v1/privacy/**``: consents, export, erasure,
  requests), the audit log, profile reads.
* ``service_agent``: the profile lookup only (``GET /api/v1/profiles/lookup`` and
  ``GET /api/v1/profiles/{profile_id}``).
"""

from __future__ import annotations

from services.admin.auth import Role

ADMIN, ANALYST = Role.ADMIN, Role.ANALYST
PRIVACY_OFFICER, SERVICE_AGENT = Role.PRIVACY_OFFICER, Role.SERVICE_AGENT

# Writes and configuration: segment changes, identity corrections, analytics refresh, tokens, write keys.
ADMIN_ONLY = frozenset({ADMIN})
# The profile 360 (lookup and by id): every role.
PROFILE_LOOKUP = frozenset({ADMIN, ANALYST, PRIVACY_OFFICER, SERVICE_AGENT})
# Read routes every back-office role but the service agent may use.
READ_ONLY = frozenset({ADMIN, ANALYST, PRIVACY_OFFICER})
# Segment and analytics reads: the analyst's work (not the privacy officer's).
ANALYTICS_READ = frozenset({ADMIN, ANALYST})
# Everything under /api/v1/privacy/** that changes something: consents, export, erasure.
PRIVACY_ROUTES = frozenset({ADMIN, PRIVACY_OFFICER})
# Reads under /api/v1/privacy/** (consent status, privacy requests).
PRIVACY_READ = frozenset({ADMIN, PRIVACY_OFFICER})
# GET /api/v1/audit: who did what on the admin API.
AUDIT_READ = frozenset({ADMIN, PRIVACY_OFFICER})

__all__ = [
    "ADMIN_ONLY",
    "ANALYTICS_READ",
    "AUDIT_READ",
    "PRIVACY_READ",
    "PRIVACY_ROUTES",
    "PROFILE_LOOKUP",
    "READ_ONLY",
    "Role",
]
