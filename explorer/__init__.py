"""ResNeXt Explorer: the Gradio app. `python -m explorer` serves it; `create_app()` builds it."""


def create_app(*args, **kwargs):  # noqa: ANN001, ANN201 - thin re-export, imported lazily
    from .app import create_app as _create_app

    return _create_app(*args, **kwargs)
