"""Public corpus layouts, embedded synthetic corpora and the array store."""
