"""The Attributions tab: maps of `resnext.explain` on uploaded or sample images, drawn."""
