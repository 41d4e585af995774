"""Money is written for people: `$0.00001`, `$0.0123`, `$12.50`, never `$1e-05` or `$0.0000`."""

from __future__ import annotations

import re

import pytest

from sloth_runner.ai.money import usd
from sloth_runner.errors import AIBudgetExceeded


@pytest.mark.parametrize("amount, text", [
    (0, "$0.00"), (0.00001, "$0.00001"), (0.0000123456, "$0.0000123"), (0.0123, "$0.0123"),
    (0.012345, "$0.0123"), (0.1, "$0.10"), (0.5, "$0.50"), (0.999, "$0.999"), (1, "$1.00"),
    (12.5, "$12.50"), (12.499, "$12.50"), (1234.5, "$1,234.50"), (-0.25, "-$0.25"),
    (3e-9, "$0.000000003"),
])
def test_usd(amount, text):
    assert usd(amount) == text


def test_budget_messages_show_amounts_people_can_read(service, server):
    service.run_id = "run-money"
    service.configure({"budget": {"run_usd": 0.00001, "daily_usd": 0.00002, "action": "stop"}})
    with pytest.raises(AIBudgetExceeded) as err:
        service.complete({"prompt": "hello", "max_tokens": 100})
    text = str(err.value)
    assert "budget.run_usd $0.00001" in text and "budget.daily_usd $0.00002" in text
    # ~3 tokens in, 100 out at gpt-4o-mini: three significant digits
    assert re.search(r"this call's estimated \$0\.0000[1-9]\d\d? ", text), text
    assert "$0.00 +" in text  # nothing spent yet
    assert "e-0" not in text and "$0.0000 " not in text
