# -*- test-case-name: tests.test_tap -*-
"""
Types shared across layers.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorCore, IReactorProcess, IReactorTCP, IReactorTime
from zope.interface.interface import InterfaceClass


class IClinvkReactor(IReactorCore, IReactorTime, IReactorProcess, IReactorTCP):
    """
    Everything clinvk needs from a reactor, as one interface for the
    composition root.  Library code asks for the narrowest part it uses.

    Real reactors do not declare this composite, so check it with
    L{provides_clinvk_reactor} rather than C{IClinvkReactor.providedBy}.
    """


def provides_clinvk_reactor(reactor: object) -> bool:
    """
    @return: Whether C{reactor} provides every interface L{IClinvkReactor}
        is made of.
    """
    parts: tuple[InterfaceClass, ...] = IClinvkReactor.__bases__  # type: ignore[assignment]
    return all(part.providedBy(reactor) for part in parts)
