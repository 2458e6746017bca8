"""Consent at the sync edge: who an ad or e-mail destination holds without marketing consent (from the ledger)."""

from __future__ import annotations

import duckdb

# A member is "current" while the destination may hold them: confirmed, or an add/removal not yet confirmed.
CURRENT_STATES = ("confirmed", "pending_add", "pending_remove")


def members_without_consent(conn: duckdb.DuckDBPyConnection, destination: str, audience: str) -> int:
    """How many current members of one destination and audience lack marketing consent (the blocking check)."""
    return len(member_keys_without_consent(conn, destination, audience))


def member_keys_without_consent(conn: duckdb.DuckDBPyConnection, destination: str, audience: str) -> list[str]:
    """Current members of one destination and audience whose latest raw.customers consent is not true.

    Consent is true only when every raw.customers row of the customer says true; no row or NULL counts as no,
    as in the sync's filter (activation.sync.consenting).
    """
    ledger_exists = conn.execute(
        "select count(*) from information_schema.tables where table_schema = 'sync' and table_name = 'destination_members'"
    ).fetchone()[0]
    if not ledger_exists:
        return []
    customers_exist = conn.execute(
        "select count(*) from information_schema.tables where table_schema = 'raw' and table_name = 'customers'"
    ).fetchone()[0]
    consent = (
        (
            "(select customer_id, bool_and(coalesce(marketing_consent, false)) as consent "
            "from raw.customers group by customer_id)"
        )
        if customers_exist
        else "(select null::varchar as customer_id, false as consent where false)"
    )
    return [
        row[0]
        for row in conn.execute(
            f"""select m.member_key from sync.destination_members as m left join {consent} as c on c.customer_id = m.member_key
        where m.destination = ? and m.audience = ? and m.state in (select unnest(?)) and not coalesce(c.consent, false)
        order by m.member_key""",
            [destination, audience, list(CURRENT_STATES)],
        ).fetchall()
    ]
