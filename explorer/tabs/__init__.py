"""One module per tab: layout and wiring only; the work is in explorer.services."""
