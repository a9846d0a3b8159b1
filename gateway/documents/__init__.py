"""GraphQL documents: parsed, limited and validated once, reused by text and by shape."""

from gateway.documents.cost import Limits, Operation
from gateway.documents.literals import Literals, Relocation, split
from gateway.documents.shapes import Shape
from gateway.documents.store import Documents, Prepared

__all__ = [
    "Documents",
    "Limits",
    "Literals",
    "Operation",
    "Prepared",
    "Relocation",
    "Shape",
    "split",
]
