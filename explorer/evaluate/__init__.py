"""The Evaluate tab: `resnext.explain.evaluate` on a trained run, its table, charts and examples."""
