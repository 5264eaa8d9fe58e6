"""Small helpers that two or more stages really share: params, atomic io, JSONL, logging."""
