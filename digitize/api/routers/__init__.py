"""One router per resource: a holder's documents, a document (metadata, PDF, verification), the outcome of a
lookup (reused or supplied again), full-text search."""
