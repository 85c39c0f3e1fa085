"""Pagination of List* answers with opaque ``NextToken`` values, as SageMaker pages them.

The token names the last item returned (its sort value and creation sequence), not an offset, so deleting
items between two pages neither skips nor repeats any: a sync that lists and deletes at once must work
against SageMaker, so it must work here. A token is only valid for the sort it came from.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from .errors import ValidationError

T = TypeVar("T")
SortKey = tuple[float | str, int]


def page(
    items: Sequence[T],
    key: Callable[[T], SortKey],
    *,
    sort_by: str,
    descending: bool,
    max_results: int,
    next_token: str | None,
) -> tuple[list[T], str | None]:
    """Return one page of ``items`` sorted by ``key`` and the token of the next page, if any."""
    ordered = sorted(items, key=key, reverse=descending)
    if next_token is not None:
        after = _decode(next_token, sort_by)
        ordered = [item for item in ordered if (key(item) < after if descending else key(item) > after)]
    chosen = ordered[:max_results]
    if len(ordered) <= max_results:
        return chosen, None
    return chosen, _encode(sort_by, key(chosen[-1]))


def _encode(sort_by: str, last: SortKey) -> str:
    raw = json.dumps([sort_by, last[0], last[1]]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode(token: str, sort_by: str) -> SortKey:
    try:
        field, value, sequence = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, TypeError):
        raise ValidationError(f"Invalid pagination token: {token}") from None
    if field != sort_by or not isinstance(sequence, int):
        raise ValidationError(f"The pagination token {token} does not belong to this sort order.")
    return value, sequence
