"""An image box whose handlers get the uploaded file as is, for `resnext.load_image` to read.

gr.Image opens the file itself before a handler runs, so a corrupt or non-image upload would
fail there with Gradio's message (and an error badge); here `resnext.load_image` decodes it
(EXIF, 16-bit, CMYK, size checked before decoding) and says plainly what is wrong.

A subclass rather than a patched instance: when an event updates a component, Gradio keeps a
per-session copy made with `block.__class__(**props)`, which keeps the class, not a patch
(see explorer/components.py). `is_template`: the frontend draws it as the built-in Image.
Gradio writes uploads.pyi beside this file when the class is defined (its type stubs).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from gradio.events import Dependency

class UploadedImage(gr.Image):
    is_template = True

    def preprocess(self, payload: Any) -> Any:
        return None if payload is None else payload.path
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component