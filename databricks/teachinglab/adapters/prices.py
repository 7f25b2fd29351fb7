"""The price table file: PRICE_TABLE_FILE, or the packaged prices.json."""
from __future__ import annotations

import json
from pathlib import Path

from databricks.teachinglab.core.prices import PriceTable

PACKAGED_PRICES = Path(__file__).parent / "prices.json"


def load_prices(path: Path | None = None) -> PriceTable:
    """Raises OSError, ValueError or KeyError when the file is missing or malformed."""
    return PriceTable.from_json(json.loads((path or PACKAGED_PRICES).read_text(encoding="utf-8")))
