"""Reports: a sweep's run records turned into tables, figures, claims and provenance."""
