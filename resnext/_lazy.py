"""Package attributes imported on first use (PEP 562), so that importing a package does not
import torch until a name that needs it is reached."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_attributes(package: str, namespace: dict[str, Any],
                    sources: Mapping[str, str | None]) -> tuple[Callable[[str], Any],
                                                                 Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`: each name in `sources` comes from the
    relative module given (None: the name is a submodule itself) and is cached in
    `namespace` (the package's globals) once imported."""
    def __getattr__(name: str) -> Any:
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = sources[name]
        if module is None:
            value: Any = importlib.import_module(f".{name}", package)
        else:
            value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(sources))

    return __getattr__, __dir__
