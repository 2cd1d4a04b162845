"""The Architecture tab: a network's exact numbers as the controls move (`tab` wires, `view` computes)."""
