"""``Registry``: the names a config may choose for one kind of thing, each with what it builds.

Datasets, optimizers and metrics are each registered this one way, next to their code::

    DATASETS = Registry("dataset", "dataset", record=DatasetEntry)

    @DATASETS.register("cifar10", config=Cifar10Config)
    def load_cifar10(cfg, device): ...

``DATASETS.get(name)`` returns what was registered (here ``DatasetEntry("cifar10", load_cifar10,
Cifar10Config)``) or raises a ``ConfigError`` on the config key that names the allowed names.
Names keep the order they were registered in (or, with ``sort=True``, alphabetical order),
which is the order messages list them in.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

from .config.checks import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry for one kind of thing, filled by ``register`` where each entry is defined.

    ``kind`` names the kind in programming errors ("dataset"); ``key`` is the config key an
    unknown name is reported on ("dataset", "model.name"); ``message`` is that report, with
    ``{name}`` and ``{allowed}`` filled in. ``record(name, obj, **details)``, when given, makes the
    entry from the registered object and the details passed to ``register``; without it the
    entry is the object itself. ``sort``: list names alphabetically, not in registration order.
    """

    def __init__(
        self,
        kind: str,
        key: str,
        *,
        message: str = "got {name!r}; allowed: {allowed}",
        record: Callable[..., T] | None = None,
        sort: bool = False,
    ):
        self.kind = kind
        self.key = key
        self.message = message
        self._record = record
        self._sort = sort
        self._entries: dict[str, T] = {}

    def register(self, name: str, **details) -> Callable:
        """Decorator: register the decorated object under ``name`` and return it unchanged, so
        one object may be registered under several names. A name is registered once only."""
        if details and self._record is None:
            raise TypeError(f"{self.kind} registry takes no details, got {', '.join(details)}")

        def add(obj):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = self._record(name, obj, **details) if self._record else obj
            return obj

        return add

    def get(self, name: str, key: str | None = None) -> T:
        """The entry of ``name``; an unknown name is a ``ConfigError`` on ``key`` (default: the
        registry's key) listing the allowed names."""
        if name not in self:
            raise ConfigError(
                self.key if key is None else key, self.message.format(name=name, allowed=", ".join(self.names()))
            )
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order (alphabetical with ``sort``)."""
        return tuple(sorted(self._entries) if self._sort else self._entries)

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, Hashable) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def values(self) -> list[T]:
        return [self._entries[name] for name in self.names()]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
