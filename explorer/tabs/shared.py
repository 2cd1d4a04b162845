"""Wiring that several tabs share."""

from __future__ import annotations

from typing import Any

from ..context import TabContext


def follow_shared_device(ctx: TabContext, dropdown: Any) -> None:
    """Keep a tab's device dropdown and the session's shared device in step.

    A user's choice (.input, never a programmatic update) sets the shared device; any change
    of the shared device moves this dropdown, so attributions run where forward passes do.
    """
    dropdown.input(lambda key: key, dropdown, ctx.device, api_visibility="private",
                   queue=False, show_progress="hidden")
    ctx.device.change(lambda key: key, ctx.device, dropdown, api_visibility="private",
                      queue=False, show_progress="hidden")
