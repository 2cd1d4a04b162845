"""The Complexity tab: where cost goes, sweeps, accuracy against cost, pinned configs."""
