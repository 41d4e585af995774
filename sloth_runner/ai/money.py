"""Money as people read it, in every message of the AI package: `$0.00001`, `$0.0123`, `$12.50`.

Amounts of a dollar or more get cents (and thousands separators); smaller ones get three
significant digits, at least two decimals, and no trailing zeros beyond them, so a call that
costs $0.0000615 never reads `$0.0000` and a budget of $0.00001 never reads `$1e-05`.
"""

from __future__ import annotations


def usd(amount: float) -> str:
    sign = "-" if amount < 0 else ""
    amount = abs(float(amount))
    if amount == 0:
        return "$0.00"
    if amount >= 1:
        return f"{sign}${amount:,.2f}"
    digits = f"{float(f'{amount:.3g}'):.12f}".rstrip("0")
    whole, _, decimals = digits.partition(".")
    return f"{sign}${whole}.{decimals.ljust(2, '0')}"
