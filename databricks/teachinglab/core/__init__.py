"""Pure: accounting, quota decisions, report numbers, prices, roster parsing, units. No I/O, clock or environment."""
