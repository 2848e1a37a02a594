"""Finding, validating, reading and batching HPA samples."""
