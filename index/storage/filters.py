"""A question's filters as SQL over ``articles``: the one definition both search paths follow.

index/search/chunk_matrix.py applies the same filters in memory and must mean the same.
"""

from __future__ import annotations

from typing import Any

from index.models import Filters
from index.storage.records import to_ts


def filter_sql(filters: Filters, alias: str = "a") -> tuple[str, list[Any]]:
    """The WHERE clause (over ``articles`` as ``alias``) and its parameters; exact
    duplicates never pass, since they have no chunks of their own."""
    clauses: list[str] = [f"{alias}.dup_kind IS NOT 'exact'"]
    params: list[Any] = []
    if filters.date_from:
        clauses.append(f"coalesce({alias}.published_ts, {alias}.indexed_ts) >= ?")
        params.append(to_ts(filters.date_from))
    if filters.date_to:
        clauses.append(f"coalesce({alias}.published_ts, {alias}.indexed_ts) < ?")
        params.append(to_ts(filters.date_to))
    if filters.sources:
        ors = []
        for s in filters.sources:
            ors.append(f"{alias}.source_key LIKE ?")
            params.append(f"%{s.lower()}%")
        clauses.append("(" + " OR ".join(ors) + ")")
    if filters.langs:
        # "+": never look articles up by language (rows, not a covering index, are read).
        clauses.append(f"+{alias}.lang IN ({','.join('?' * len(filters.langs))})")
        params.extend(filters.langs)
    return " AND ".join(clauses), params


def filter_key(filters: Filters) -> tuple[Any, ...]:
    """What makes two filters select the same rows (a cache key)."""
    return (
        to_ts(filters.date_from), to_ts(filters.date_to), tuple(filters.sources),
        tuple(filters.langs),
    )
