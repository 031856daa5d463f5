"""Where a person's data lives in the warehouse: one erasure rule per table, and the tables that
hold no personal data (each with the reason).

A rule is a ``WHERE`` condition over the person's profile ids (``{pids:Array(String)}``),
normalised identifier keys (``{keys:Array(String)}``) and the ids of their orders, conversations
and complaints (``{orders:Array(String)}``, ``{conversations:Array(String)}``,
``{complaints:Array(String)}``). The erasure counts and deletes with the same condition, and a
test proves that every table of the database is either ruled or exempt, so a new table cannot be
forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EraseRule:
    table: str
    where: str


RULES: tuple[EraseRule, ...] = (
    EraseRule("events", "profile_id IN {pids:Array(String)} OR hasAny(identity_keys, {keys:Array(String)})"),
    EraseRule("events_by_anchor", "anchor IN {keys:Array(String)} OR profile_id IN {pids:Array(String)}"),
    EraseRule(
        "profiles",
        "profile_id IN {pids:Array(String)} OR merged_into IN {pids:Array(String)} "
        "OR hasAny(identifiers, {keys:Array(String)})",
    ),
    EraseRule("identities", "identifier IN {keys:Array(String)} OR profile_id IN {pids:Array(String)}"),
    EraseRule("identity_links", "a IN {keys:Array(String)} OR b IN {keys:Array(String)}"),
    EraseRule(
        "identity_merges",
        "survivor IN {pids:Array(String)} OR absorbed IN {pids:Array(String)} "
        "OR link_a IN {keys:Array(String)} OR link_b IN {keys:Array(String)}",
    ),
    EraseRule(
        "identity_refusals",
        "a IN {keys:Array(String)} OR b IN {keys:Array(String)} "
        "OR a_profile IN {pids:Array(String)} OR b_profile IN {pids:Array(String)}",
    ),
    EraseRule("identity_operator_rules", "a IN {keys:Array(String)} OR b IN {keys:Array(String)}"),
    EraseRule(
        "identity_corrections",
        "profile_id IN {pids:Array(String)} OR hasAny(profiles, {pids:Array(String)}) "
        "OR multiSearchAny(subject, {keys:Array(String)}) "
        "OR multiSearchAny(removed_links, {keys:Array(String)})",
    ),
    EraseRule("profile_redirects", "absorbed IN {pids:Array(String)} OR survivor IN {pids:Array(String)}"),
    EraseRule("segment_membership", "profile_id IN {pids:Array(String)}"),
    EraseRule("segment_membership_log", "profile_id IN {pids:Array(String)}"),
    EraseRule("order_events", "profile_id IN {pids:Array(String)} OR anchor IN {keys:Array(String)}"),
    EraseRule(
        "order_completion_lines", "profile_id IN {pids:Array(String)} OR order_id IN {orders:Array(String)}"
    ),
    EraseRule("kpi_daily_state", "profile_id IN {pids:Array(String)}"),
    EraseRule("email_engagement_state", "profile_id IN {pids:Array(String)}"),
    EraseRule("conversations_state", "conversation_id IN {conversations:Array(String)}"),
    EraseRule("complaints_state", "complaint_id IN {complaints:Array(String)}"),
    EraseRule("customer_value", "profile_id IN {pids:Array(String)}"),
    EraseRule(
        "consents",
        "profile_id IN {pids:Array(String)} OR anchor IN {keys:Array(String)} "
        "OR hasAny(identity_keys, {keys:Array(String)})",
    ),
)

# Tables without personal data: configuration, bookkeeping, the hashed suppression list and
# audit records that name principals and route templates, never a customer.
EXEMPT: dict[str, str] = {
    "schema_migrations": "migration bookkeeping",
    "identity_epochs": "Kafka cluster ids and positions",
    "identity_assignments": "Null engine: keeps no rows (feeds identities, which is ruled)",
    "segment_definitions": "segment rules written by operators",
    "segment_backfills": "backfill progress counters",
    "analytics_refreshes": "refresh bookkeeping and fitted model parameters",
    "suppressions": "keyed hashes of erased identifiers (must outlive the erasure)",
    "privacy_requests": "the privacy audit: principals, times, counts and a keyed hash of the subject",
    "admin_audit": "admin API calls: principal, role, method, route template (never a path or query)",
    "api_tokens": "admin API tokens of operators: names, roles, SHA-256 digests",
    "write_keys": "ingest write keys of sources: SHA-256 digests",
}


def rule_for(table: str) -> EraseRule | None:
    return next((rule for rule in RULES if rule.table == table), None)
